import Fastify from 'fastify'
import t from 'tap'
import { allowed, envelopeOf, toReview, V1, V1BETA1, type AdmissionReviewReply } from '../../src/admission/review.js'
import { admissionRoute, type AdmissionRoute } from '../../src/server/route.js'
import type { Logger } from '../../src/util/logger.js'
import { review } from '../helpers/fixtures.js'

interface Line {
  level: string
  obj: Record<string, unknown>
  msg: string
}

function memoryLogger(enabled: (level: string) => boolean = () => true): { log: Logger; lines: Line[] } {
  const lines: Line[] = []
  const at = (level: string) => (obj: object, msg: string) =>
    void lines.push({ level, obj: obj as Record<string, unknown>, msg })
  return {
    lines,
    log: { isLevelEnabled: enabled, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
  }
}

interface TestRecord {
  uid: string
  decision: string
  secret: string
}

function route(overrides: Partial<AdmissionRoute<TestRecord>> = {}) {
  const observed: Array<[TestRecord, number]> = []
  const after: TestRecord[] = []
  const spec: AdmissionRoute<TestRecord> = {
    path: '/judge',
    failure: 'judging failed',
    handle: (body) => {
      const { uid, version } = envelopeOf(body)
      return { record: { uid, decision: 'allow', secret: 'token' }, reply: toReview(version, allowed(uid)) }
    },
    recover: (uid) => allowed(uid, ['could not check']),
    observe: (record, seconds) => void observed.push([record, seconds]),
    level: () => 'info',
    describe: (record) => ({ uid: record.uid, decision: record.decision }),
    after: (record) => void after.push(record),
    ...overrides,
  }
  return { spec, observed, after }
}

t.test('one route: handled, counted, one line without what describe leaves out, then after', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  const { log, lines } = memoryLogger()
  const { spec, observed, after } = route()
  admissionRoute(app, spec, log)
  const body = review('pod-create')
  const res = await app.inject({ method: 'POST', url: '/judge', payload: body })
  t.equal(res.statusCode, 200)
  t.same(res.json<AdmissionReviewReply>(), {
    apiVersion: V1,
    kind: 'AdmissionReview',
    response: { uid: body['request'].uid, allowed: true },
  })
  t.equal(observed.length, 1)
  t.ok(observed[0]![1] >= 0, 'seconds measured')
  t.equal(lines.length, 1)
  t.equal(lines[0]!.level, 'info')
  t.equal(lines[0]!.msg, 'admission allow')
  t.same(lines[0]!.obj['admission'], { uid: body['request'].uid, decision: 'allow' })
  t.notMatch(JSON.stringify(lines[0]!.obj), /token/, 'only the described fields reach the log')
  t.equal(after.length, 1)
})

t.test('a level that is not written builds no line', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  const { log, lines } = memoryLogger((level) => level !== 'debug')
  let described = 0
  const { spec, observed } = route({ level: () => 'debug', describe: () => ({ n: ++described }) })
  admissionRoute(app, spec, log)
  await app.inject({ method: 'POST', url: '/judge', payload: review('pod-create') })
  t.equal(lines.length, 0)
  t.equal(described, 0)
  t.equal(observed.length, 1, 'still counted')
})

t.test('a handler that throws: the route recovers in the version and with the uid received', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  const { log, lines } = memoryLogger()
  const { spec, observed, after } = route({
    handle: () => {
      throw new Error('boom')
    },
  })
  admissionRoute(app, spec, log)
  const v1beta1 = review('pod-create-review-v1beta1')
  const res = await app.inject({ method: 'POST', url: '/judge', payload: v1beta1 })
  t.equal(res.statusCode, 200)
  t.same(res.json<AdmissionReviewReply>(), {
    apiVersion: V1BETA1,
    kind: 'AdmissionReview',
    response: { uid: v1beta1['request'].uid, allowed: true, warnings: ['could not check'] },
  })
  const odd = await app.inject({ method: 'POST', url: '/judge', payload: [1, 2] })
  t.same(
    odd.json<AdmissionReviewReply>().response,
    { uid: '', allowed: true, warnings: ['could not check'] },
    'no uid to copy: an empty one',
  )
  t.equal(odd.json<AdmissionReviewReply>().apiVersion, V1)
  t.equal(observed.length, 0)
  t.equal(after.length, 0)
  t.same(
    lines.map((l) => [l.level, l.msg, l.obj['path']]),
    [
      ['error', 'judging failed', '/judge'],
      ['error', 'judging failed', '/judge'],
    ],
  )
  t.match(String((lines[0]!.obj['err'] as Error).message), /boom/)
})

t.test('review lines go to their own logger when one is given; error lines to the main one', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  const main = memoryLogger()
  const reviews = memoryLogger()
  let fail = false
  const { spec } = route({
    handle: (body) => {
      const { uid, version } = envelopeOf(body)
      if (fail) throw new Error('boom')
      return { record: { uid, decision: 'allow', secret: 'token' }, reply: toReview(version, allowed(uid)) }
    },
  })
  admissionRoute(app, spec, main.log, reviews.log)
  await app.inject({ method: 'POST', url: '/judge', payload: review('pod-create') })
  fail = true
  await app.inject({ method: 'POST', url: '/judge', payload: review('pod-create') })
  t.same(
    reviews.lines.map((l) => [l.level, l.msg]),
    [['info', 'admission allow']],
  )
  t.same(
    main.lines.map((l) => [l.level, l.msg]),
    [['error', 'judging failed']],
  )
})
