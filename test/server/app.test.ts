import Fastify from 'fastify'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { webhookApp } from '../../src/server/app.js'
import { createMetrics } from '../../src/server/metrics.js'
import {
  exampleInventory,
  review,
  reviewWith,
  type FixtureNodeImageSet,
  type FixtureReview,
} from '../helpers/fixtures.js'
import type { AdmissionReviewReply } from '../../src/admission/review.js'
import { parseLogLine, type LogLine } from '../helpers/log-lines.js'

const now = Date.parse('2026-11-21T06:00:00Z')

async function build(t: Test, ready = true) {
  const inventory = exampleInventory(now)
  const metrics = createMetrics({ inventory, now: () => now })
  const app = Fastify({ logger: false })
  await app.register(webhookApp, { inventory, mode: 'enforce', metrics, ready: () => ready, now: () => now })
  t.teardown(() => app.close())
  return app
}

t.test('POST /validate answers real reviews', async (t) => {
  const app = await build(t)
  const body = review('deployment-update-image')
  const res = await app.inject({ method: 'POST', url: '/validate?timeout=10s', payload: body })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /application\/json/)
  const reply = res.json<AdmissionReviewReply>()
  t.equal(reply.apiVersion, 'admission.k8s.io/v1')
  t.equal(reply.response.uid, body['request'].uid)
  t.equal(reply.response.allowed, false)
  t.match(reply.response.status?.message, /registry.local:5000\/team\/api:1.5.0/)
})

t.test('transport errors are clear 4xx AdmissionReviews, never an HTML page', async (t) => {
  const app = await build(t)
  const cases: Array<[string, Record<string, unknown>, number, RegExp]> = [
    [
      'non-JSON',
      { payload: '{"apiVersion": ', headers: { 'content-type': 'application/json' } },
      400,
      /not valid JSON/,
    ],
    [
      'wrong content type',
      { payload: 'hello', headers: { 'content-type': 'text/plain' } },
      415,
      /Content-Type must be application\/json/,
    ],
    ['empty body', { payload: '', headers: { 'content-type': 'application/json' } }, 400, /empty body/],
    [
      'oversized',
      { payload: '{"a":"' + 'x'.repeat(7 * 1024 * 1024) + '"}', headers: { 'content-type': 'application/json' } },
      413,
      /larger than 7340032 bytes/,
    ],
  ]
  for (const [name, req, status, pattern] of cases) {
    const res = await app.inject({ method: 'POST', url: '/validate', ...req })
    t.equal(res.statusCode, status, name)
    const reply = res.json<AdmissionReviewReply>()
    t.equal(reply.kind, 'AdmissionReview', name)
    t.equal(reply.response.allowed, false, name)
    t.equal(reply.response.status?.code, status, name)
    t.match(reply.response.status?.message, pattern, name)
  }
  const notFound = await app.inject({ method: 'GET', url: '/nope' })
  t.equal(notFound.statusCode, 404)
  t.match(notFound.json<{ message: string }>().message, /POST \/validate/)
})

t.test('a body just under the limit is accepted', async (t) => {
  const app = await build(t)
  const body = review('pod-create')
  body['request'].object.metadata.annotations!['filler'] = 'x'.repeat(6 * 1024 * 1024)
  const res = await app.inject({ method: 'POST', url: '/validate', payload: body })
  t.equal(res.statusCode, 200)
  t.equal(res.json<AdmissionReviewReply>().response.allowed, true)
})

t.test('health, readiness and metrics', async (t) => {
  const app = await build(t)
  t.equal((await app.inject('/healthz')).statusCode, 200)
  t.equal((await app.inject('/readyz')).statusCode, 200)
  await app.inject({ method: 'POST', url: '/validate', payload: review('deployment-update-image') })
  await app.inject({ method: 'POST', url: '/validate', payload: review('pod-create') })
  await app.inject({ method: 'POST', url: '/validate', payload: { nope: 1 } })
  const metrics = await app.inject('/metrics')
  t.equal(metrics.statusCode, 200)
  t.match(metrics.headers['content-type'], /text\/plain/)
  t.match(metrics.body, /neverpull_admission_requests_total\{kind="Deployment",operation="UPDATE",decision="deny"\} 1/)
  t.match(metrics.body, /neverpull_admission_requests_total\{kind="Pod",operation="CREATE",decision="allow"\} 1/)
  t.match(metrics.body, /neverpull_admission_requests_total\{kind="unknown",operation="unknown",decision="invalid"\} 1/)
  t.match(metrics.body, /neverpull_admission_duration_seconds_bucket/)
  t.match(metrics.body, /neverpull_inventory_nodes 3/)
  t.match(metrics.body, /neverpull_inventory_image_sets 3/)
  t.match(metrics.body, /neverpull_findings_total\{reason="missing",severity="deny",mode="enforce"\} 1/)
  const again = await app.inject('/metrics')
  t.match(
    again.body,
    /neverpull_admission_requests_total\{kind="Deployment",operation="UPDATE",decision="deny"\} 1/,
    'a second scrape reports the same totals',
  )
  t.match(again.body, /neverpull_admission_duration_seconds_count 3/)
})

t.test('not ready until the inventory is loaded', async (t) => {
  const app = await build(t, false)
  const res = await app.inject('/readyz')
  t.equal(res.statusCode, 503)
  t.match(res.json<{ message: string }>().message, /inventory not loaded/)
})

/** The pod-create fixture turned into a NodeImageSet write, as the apiserver sends it. */
function nodeImageSetReview(
  name: string,
  userInfo: Record<string, unknown>,
  operation: 'CREATE' | 'UPDATE' = 'CREATE',
): FixtureReview<FixtureNodeImageSet> {
  const object: FixtureNodeImageSet = {
    apiVersion: 'neverpull.dev/v1alpha1',
    kind: 'NodeImageSet',
    metadata: { name },
    spec: {
      nodeName: name,
      images: [{ id: 'sha256:' + 'a'.repeat(64), repoTags: ['docker.io/library/myapp:dev'], repoDigests: [] }],
    },
  }
  const body = reviewWith(
    'pod-create',
    object,
    operation === 'UPDATE' ? { ...object, spec: { nodeName: name, images: [] } } : null,
  )
  const r = body['request']
  r.kind = r.requestKind = { group: 'neverpull.dev', version: 'v1alpha1', kind: 'NodeImageSet' }
  r.resource = r.requestResource = { group: 'neverpull.dev', version: 'v1alpha1', resource: 'nodeimagesets' }
  r.name = name
  delete r.namespace
  r.operation = operation
  r.userInfo = userInfo
  return body
}

const agent = (node?: string) => ({
  username: 'system:serviceaccount:neverpull-system:neverpull-guard-agent',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:neverpull-system', 'system:authenticated'],
  ...(node === undefined ? {} : { extra: { 'authentication.kubernetes.io/node-name': [node] } }),
})

t.test('POST /validate-nodeimageset: only the agent of a node writes its NodeImageSet', async (t) => {
  const app = await build(t)
  const forged = nodeImageSetReview('node-a', { username: 'jane', groups: ['system:authenticated'] })
  const res = await app.inject({ method: 'POST', url: '/validate-nodeimageset?timeout=3s', payload: forged })
  t.equal(res.statusCode, 200)
  const denied = res.json<AdmissionReviewReply>()
  t.equal(denied.kind, 'AdmissionReview')
  t.equal(denied.response.uid, forged['request'].uid)
  t.equal(denied.response.allowed, false)
  t.same(denied.response.status?.code, 403)
  t.same(denied.response.status?.reason, 'Forbidden')
  t.match(
    denied.response.status?.message,
    /^NodeImageSet node-a: user "jane" may not write NodeImageSets; only the neverpull-guard agent/,
  )

  const own = await app.inject({
    method: 'POST',
    url: '/validate-nodeimageset',
    payload: nodeImageSetReview('node-a', agent('node-a'), 'UPDATE'),
  })
  t.same(own.json<AdmissionReviewReply>().response, { uid: forged['request'].uid, allowed: true })
  const other = await app.inject({
    method: 'POST',
    url: '/validate-nodeimageset',
    payload: nodeImageSetReview('node-b', agent('node-a')),
  })
  t.equal(other.json<AdmissionReviewReply>().response.allowed, false)
  t.match(
    other.json<AdmissionReviewReply>().response.status?.message,
    /agent on node "node-a" may not write the image list of node "node-b"/,
  )
  const unbound = await app.inject({
    method: 'POST',
    url: '/validate-nodeimageset',
    payload: nodeImageSetReview('node-b', agent()),
  })
  t.equal(unbound.json<AdmissionReviewReply>().response.allowed, true)
  t.equal(
    unbound.json<AdmissionReviewReply>().response.warnings,
    undefined,
    'no warning: the agent would log it on every write',
  )

  const metrics = (await app.inject('/metrics')).body
  t.match(metrics, /neverpull_admission_requests_total\{kind="NodeImageSet",operation="CREATE",decision="deny"\} 2/)
  t.match(metrics, /neverpull_admission_requests_total\{kind="NodeImageSet",operation="UPDATE",decision="allow"\} 1/)
  t.match(metrics, /neverpull_nodeimageset_reviews_total\{reason="not-allowed"\} 1/)
  t.match(metrics, /neverpull_nodeimageset_reviews_total\{reason="other-node"\} 1/)
  t.match(metrics, /neverpull_nodeimageset_reviews_total\{reason="agent-own-node"\} 1/)
  t.match(metrics, /neverpull_nodeimageset_reviews_total\{reason="agent-unbound"\} 1/)
})

t.test('POST /validate-nodeimageset honours --agent-service-account', async (t) => {
  const inventory = exampleInventory(now)
  const metrics = createMetrics({ inventory, now: () => now })
  const app = Fastify({ logger: false })
  await app.register(webhookApp, {
    inventory,
    mode: 'enforce',
    metrics,
    ready: () => true,
    now: () => now,
    agentServiceAccount: { namespace: 'infra', name: 'image-agent' },
  })
  t.teardown(() => app.close())
  const custom = { username: 'system:serviceaccount:infra:image-agent', groups: ['system:serviceaccounts'] }
  t.equal(
    (
      await app.inject({ method: 'POST', url: '/validate-nodeimageset', payload: nodeImageSetReview('node-a', custom) })
    ).json<AdmissionReviewReply>().response.allowed,
    true,
  )
  const dflt = await app.inject({
    method: 'POST',
    url: '/validate-nodeimageset',
    payload: nodeImageSetReview('node-a', agent('node-a')),
  })
  t.equal(dflt.json<AdmissionReviewReply>().response.allowed, false)
  t.match(dflt.json<AdmissionReviewReply>().response.status?.message, /\(system:serviceaccount:infra:image-agent\)/)
})

t.test('POST /validate-nodeimageset: transport errors and malformed reviews are 4xx AdmissionReviews', async (t) => {
  const app = await build(t)
  const bad = await app.inject({
    method: 'POST',
    url: '/validate-nodeimageset',
    payload: '{"apiVersion": ',
    headers: { 'content-type': 'application/json' },
  })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json<AdmissionReviewReply>().kind, 'AdmissionReview')
  const type = await app.inject({
    method: 'POST',
    url: '/validate-nodeimageset',
    payload: 'x',
    headers: { 'content-type': 'text/plain' },
  })
  t.equal(type.statusCode, 415)
  const malformed = await app.inject({
    method: 'POST',
    url: '/validate-nodeimageset',
    payload: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u1' } },
  })
  t.equal(malformed.statusCode, 200)
  t.same(malformed.json<AdmissionReviewReply>().response.status?.code, 400)
  t.equal(malformed.json<AdmissionReviewReply>().response.uid, 'u1')
  t.match(
    (await app.inject({ method: 'GET', url: '/nope' })).json<{ message: string }>().message,
    /POST \/validate-nodeimageset/,
  )
  const get = await app.inject({ method: 'GET', url: '/validate-nodeimageset' })
  t.equal(get.statusCode, 404)
})

t.test(
  'the two routes stay apart: NodeImageSets on /validate and pods on /validate-nodeimageset are not judged',
  async (t) => {
    const app = await build(t)
    const forged = nodeImageSetReview('node-a', { username: 'jane' })
    t.equal(
      (await app.inject({ method: 'POST', url: '/validate', payload: forged })).json<AdmissionReviewReply>().response
        .allowed,
      true,
    )
    const pod = review('deployment-update-image')
    t.equal(
      (await app.inject({ method: 'POST', url: '/validate-nodeimageset', payload: pod })).json<AdmissionReviewReply>()
        .response.allowed,
      true,
    )
  },
)

t.test(
  'log lines: denials warn, routine agent writes stay at debug, a node-less agent token is reported once',
  async (t) => {
    const lines: LogLine[] = []
    const stream = new Writable({
      write(chunk, _, cb) {
        lines.push(parseLogLine(chunk))
        cb()
      },
    })
    const inventory = exampleInventory(now)
    const metrics = createMetrics({ inventory, now: () => now })
    const app = Fastify({ logger: false })
    const log = pino({ level: 'debug' }, stream)
    await app.register(webhookApp, { inventory, mode: 'enforce', metrics, ready: () => true, now: () => now, log })
    t.teardown(() => app.close())
    const send = (payload: object) => app.inject({ method: 'POST', url: '/validate-nodeimageset', payload })
    await send(nodeImageSetReview('node-a', { username: 'jane' }))
    await send(nodeImageSetReview('node-a', agent('node-a')))
    await send(nodeImageSetReview('node-b', agent()))
    await send(nodeImageSetReview('node-c', agent()))
    const admissions = lines.filter((l) => l['admission'] !== undefined)
    t.same(
      admissions.map((l) => [l['level'], l.admission?.reason, l.admission?.decision]),
      [
        [40, 'not-allowed', 'deny'],
        [20, 'agent-own-node', 'allow'],
        [20, 'agent-unbound', 'allow'],
        [20, 'agent-unbound', 'allow'],
      ],
    )
    t.match(admissions[0], {
      admission: { kind: 'NodeImageSet', name: 'node-a', operation: 'CREATE', user: 'jane', namespace: '' },
    })
    t.equal(admissions[1]?.admission?.writerNode, 'node-a')
    const unbound = lines.filter((l) => /token names no node/.test(String(l['msg'])))
    t.equal(unbound.length, 1, 'reported once, not on every write')
    t.equal(unbound[0]?.['level'], 30)
  },
)
