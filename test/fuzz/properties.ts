import fc from 'fast-check'
import Fastify, { type FastifyInstance } from 'fastify'
import { Writable } from 'node:stream'
import { checkPodReview, type Handled } from '../../src/admission/pod-check.js'
import { V1, V1BETA1 } from '../../src/admission/review.js'
import { MAX_WARNING_RUNES } from '../../src/decision/messages.js'
import type { InventoryIndex } from '../../src/inventory/inventory-index.js'
import type { Mode } from '../../src/api/types.js'
import { webhookApp } from '../../src/server/app.js'
import { createMetrics } from '../../src/server/metrics.js'
import { exampleInventory } from '../helpers/fixtures.js'
import {
  envelope,
  fixture,
  hugeReview,
  imageCase,
  mutatedReview,
  nested,
  podSpecOf,
  podWithImage,
} from './generators.js'

// The admission properties, shared by test/fuzz/*.test.ts (a few hundred cases each, in
// `npm test`) and fuzz/run.ts (`npm run fuzz`, 100,000+ cases).
//
//   - checkPodReview never throws, whatever the body;
//   - a body whose request.uid is a string gets an AdmissionReview answering that uid, in the
//     review's own apiVersion;
//   - every warning is at most 256 runes, one line, no control characters (the apiserver drops
//     a warning with one) and well-formed UTF-16;
//   - POST /validate answers 200 with an AdmissionReview for every JSON body, 4xx for anything
//     else, never 5xx;
//   - every case is answered within its budget.

export const NOW = Date.parse('2026-11-21T06:00:00Z')

/**
 * Per case: far below the apiserver's webhook timeout (10 s, `?timeout=10s`), generous for a
 * loaded 2-core CI machine. Bodies with thousands of containers get half the apiserver's
 * timeout: an UPDATE with 10,000 containers takes 0.5-1.7 s alone (decide.ts compares every
 * container with every old one) and over 3 s while the machine runs other tests.
 */
export const CASE_BUDGET_MS = 1000
export const HUGE_CASE_BUDGET_MS = 5000

export interface FuzzEnv {
  inventory: InventoryIndex
  app: FastifyInstance
  /** Inputs that hit a bug already reported (see test/fuzz/known-bugs.test.ts) are counted, not judged. */
  /** Slowest case per property, ms. */
  slowest: Map<string, number>
}

export async function createEnv(): Promise<FuzzEnv> {
  const inventory = exampleInventory(NOW)
  const metrics = createMetrics({ inventory, now: () => NOW })
  // A real pino logger into the void: the route's log line must cope with any field too.
  const sink = new Writable({
    write(_c, _e, cb) {
      cb()
    },
  })
  const app = Fastify({ logger: { level: 'debug', stream: sink } })
  await app.register(webhookApp, { inventory, mode: 'enforce', metrics, ready: () => true, now: () => NOW })
  await app.ready()
  return { inventory, app, slowest: new Map() }
}

// ---- the oracle ----

function fail(message: string): never {
  throw new Error(message)
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The uid the apiserver expects back, when the body has one. */
export function uidOf(body: unknown): string | undefined {
  if (!isObject(body)) return undefined
  const request = body['request']
  if (!isObject(request)) return undefined
  const uid = request['uid']
  return typeof uid === 'string' ? uid : undefined
}

/** Go's unicode.IsControl: C0, DEL and C1. */
function controlIn(s: string): number | undefined {
  for (const ch of s) {
    const c = ch.codePointAt(0)!
    if (c < 0x20 || (c >= 0x7f && c < 0xa0)) return c
  }
  return undefined
}

function loneSurrogateIn(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) i++
      else return true
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return true
    }
  }
  return false
}

export function checkWarnings(warnings: unknown): void {
  if (warnings === undefined) return
  if (!Array.isArray(warnings)) fail(`warnings is not an array: ${JSON.stringify(warnings)}`)
  for (const w of warnings) {
    if (typeof w !== 'string') fail(`warning is not a string: ${JSON.stringify(w)}`)
    const runes = [...w].length
    if (runes > MAX_WARNING_RUNES) fail(`warning of ${runes} runes (> ${MAX_WARNING_RUNES}): ${JSON.stringify(w)}`)
    if (w.length === 0) fail('empty warning')
    const control = controlIn(w)
    if (control !== undefined)
      fail(`warning with control character U+${control.toString(16).padStart(4, '0')}: ${JSON.stringify(w)}`)
    if (loneSurrogateIn(w)) fail(`warning with a lone surrogate: ${JSON.stringify(w)}`)
  }
}

/** What the apiserver requires of the reply to `body`. */
export function checkReply(body: unknown, reply: unknown): void {
  if (!isObject(reply)) fail(`reply is not an object: ${JSON.stringify(reply)}`)
  if (reply['kind'] !== 'AdmissionReview') fail(`reply kind ${JSON.stringify(reply['kind'])}`)
  const wantVersion = isObject(body) && body['apiVersion'] === V1BETA1 ? V1BETA1 : V1
  if (reply['apiVersion'] !== wantVersion)
    fail(`reply apiVersion ${JSON.stringify(reply['apiVersion'])}, want ${wantVersion}`)
  const response = reply['response']
  if (!isObject(response)) fail('reply without a response')
  if (typeof response['allowed'] !== 'boolean') fail(`response.allowed ${JSON.stringify(response['allowed'])}`)
  if (typeof response['uid'] !== 'string') fail(`response.uid ${JSON.stringify(response['uid'])}`)
  const uid = uidOf(body)
  if (uid !== undefined && response['uid'] !== uid)
    fail(`response.uid ${JSON.stringify(response['uid'])}, request.uid ${JSON.stringify(uid)}`)
  if (response['allowed'] === false) {
    const status = response['status']
    if (!isObject(status)) fail('denied without a status')
    const code = status['code']
    if (typeof code !== 'number' || code < 400 || code > 599) fail(`status.code ${JSON.stringify(code)}`)
    if (typeof status['message'] !== 'string' || status['message'] === '') fail('denied without a message')
  }
  checkWarnings(response['warnings'])
}

function timed<T>(env: FuzzEnv, name: string, budget: number, run: () => T): T {
  const started = performance.now()
  const result = run()
  const ms = performance.now() - started
  if (ms > (env.slowest.get(name) ?? 0)) env.slowest.set(name, ms)
  if (ms > budget) fail(`case took ${ms.toFixed(0)} ms (budget ${budget} ms)`)
  return result
}

async function timedAsync<T>(env: FuzzEnv, name: string, budget: number, run: () => Promise<T>): Promise<T> {
  const started = performance.now()
  const result = await run()
  const ms = performance.now() - started
  if (ms > (env.slowest.get(name) ?? 0)) env.slowest.set(name, ms)
  if (ms > budget) fail(`case took ${ms.toFixed(0)} ms (budget ${budget} ms)`)
  return result
}

const modes = fc.constantFrom<Mode>('enforce', 'warn', 'audit')

function handled(env: FuzzEnv, name: string, body: unknown, mode: Mode, budget = CASE_BUDGET_MS): Handled {
  let out: Handled | undefined
  timed(env, name, budget, () => {
    try {
      out = checkPodReview(body, { inventory: env.inventory, mode, now: NOW })
    } catch (err) {
      fail(`checkPodReview threw: ${(err as Error).stack ?? String(err)}`)
    }
  })
  checkReply(body, out!.reply)
  // What the route hands Fastify must serialise.
  JSON.stringify(out!.reply)
  return out!
}

// ---- HTTP ----

export interface RawCase {
  payload: Buffer
  contentType: string | undefined
  /** True when a JSON body (by the apiserver's rules) is sent as application/json. */
  json: boolean
}

const FORBIDDEN_KEY = /"(?:__proto__|constructor)"\s*:/

/**
 * The answer to a raw body: 200 AdmissionReview for JSON, 4xx otherwise, never 5xx.
 * Fastify's JSON parser (secure-json-parse) refuses `__proto__` and `constructor` keys with a
 * 400; the apiserver never sends either (no Kubernetes field or label key can be one).
 */
async function checkHttp(env: FuzzEnv, name: string, c: RawCase, budget = CASE_BUDGET_MS): Promise<void> {
  const res = await timedAsync(env, name, budget, () =>
    env.app.inject({
      method: 'POST',
      url: '/validate?timeout=10s',
      payload: c.payload,
      headers: c.contentType === undefined ? {} : { 'content-type': c.contentType },
    }),
  )
  if (res.statusCode >= 500) fail(`HTTP ${res.statusCode}: ${res.body.slice(0, 500)}`)
  const text = c.payload.toString('utf8')
  const forbidden = FORBIDDEN_KEY.test(text)
  if (c.json && !forbidden && res.statusCode !== 200)
    fail(`JSON body answered HTTP ${res.statusCode}: ${res.body.slice(0, 500)}`)
  if (res.statusCode !== 200 && (res.statusCode < 400 || res.statusCode > 499)) fail(`HTTP ${res.statusCode}`)
  let reply: unknown
  try {
    reply = JSON.parse(res.body)
  } catch {
    fail(`HTTP ${res.statusCode} body is not JSON: ${res.body.slice(0, 200)}`)
  }
  if (res.statusCode === 200) {
    let body: unknown
    try {
      body = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text)
    } catch {
      body = undefined
    }
    checkReply(body, reply)
  } else {
    if (!isObject(reply) || reply['kind'] !== 'AdmissionReview') {
      // Only the not-found handler answers without an AdmissionReview, and /validate exists.
      fail(`HTTP ${res.statusCode} without an AdmissionReview: ${res.body.slice(0, 200)}`)
    }
    const response = reply['response']
    if (!isObject(response) || response['allowed'] !== false)
      fail(`HTTP ${res.statusCode} reply not a refusal: ${res.body.slice(0, 200)}`)
  }
}

function serialisable(body: unknown): boolean {
  try {
    JSON.stringify(body)
    return true
  } catch {
    return false
  }
}

function jsonCase(body: unknown): RawCase {
  return { payload: Buffer.from(JSON.stringify(body) ?? 'null'), contentType: 'application/json', json: true }
}

/** Mutated reviews that can be sent as bytes at all (a mutation can make one refer to itself). */
const jsonReview = mutatedReview.filter(serialisable)

/** Turns a body into one that fails (or nearly fails) decoding: raw 0xff bytes, truncation, a BOM. */
const rawCase: fc.Arbitrary<RawCase> = fc.oneof(
  fc
    .uint8Array({ maxLength: 200 })
    .map((b) => ({ payload: Buffer.from(b), contentType: 'application/json', json: false })),
  fc
    .tuple(
      jsonReview,
      fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
      fc.constantFrom(0xff, 0xfe, 0xc0, 0x80, 0xed),
    )
    .map(([body, at, byte]) => {
      const buf = Buffer.from(JSON.stringify(body))
      for (const i of at) buf[i % buf.length] = byte
      return { payload: buf, contentType: 'application/json', json: false }
    }),
  // Invalid UTF-8 inside a string value: decoded to U+FFFD, still JSON, still a review.
  fc
    .tuple(
      fc.constantFrom('pod-create', 'deployment-create', 'daemonset-create'),
      fc.constantFrom(
        Buffer.from([0xff]),
        Buffer.from([0xc3, 0x28]),
        Buffer.from([0xed, 0xa0, 0x80]),
        Buffer.from([0xf4, 0x90, 0x80, 0x80]),
      ),
    )
    .map(([name, bad]) => {
      const body = fixture(name)
      const marker = 'INVALIDUTF8'
      const spec = podSpecOf(
        (body['request'] as Record<string, unknown>)['object'],
        String(((body['request'] as Record<string, unknown>)['kind'] as Record<string, unknown>)['kind']),
      )!
      ;(spec['containers'] as Array<Record<string, unknown>>)[0]!['image'] = `app${marker}:1`
      ;(spec['containers'] as Array<Record<string, unknown>>)[0]!['name'] = `c${marker}`
      const text = JSON.stringify(body)
      const parts = text.split(marker)
      const payload = Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [Buffer.from(p)] : [bad, Buffer.from(p)])))
      return { payload, contentType: 'application/json', json: true }
    }),
  fc.tuple(jsonReview, fc.nat()).map(([body, cut]) => {
    const text = JSON.stringify(body)
    return { payload: Buffer.from(text.slice(0, cut % text.length)), contentType: 'application/json', json: false }
  }),
  jsonReview.map((body) => ({
    payload: Buffer.from('\ufeff' + JSON.stringify(body)),
    contentType: 'application/json',
    json: true,
  })),
  fc
    .tuple(
      jsonReview,
      fc.constantFrom(
        'text/plain',
        'application/yaml',
        'application/x-www-form-urlencoded',
        'multipart/form-data',
        'application/octet-stream',
        'application/jsonx',
        '',
        undefined,
      ),
    )
    .map(([body, ct]) => ({
      payload: Buffer.from(JSON.stringify(body)),
      contentType: ct,
      json: false,
    })),
  fc
    .tuple(
      jsonReview,
      fc.constantFrom('application/json; charset=utf-8', 'Application/JSON', 'application/json;charset=UTF-8'),
    )
    .map(([body, ct]) => ({
      payload: Buffer.from(JSON.stringify(body)),
      contentType: ct,
      json: true,
    })),
  fc.constantFrom<RawCase>(
    { payload: Buffer.alloc(0), contentType: 'application/json', json: false },
    { payload: Buffer.from('   '), contentType: 'application/json', json: false },
    { payload: Buffer.from('null'), contentType: 'application/json', json: true },
    { payload: Buffer.from('[]'), contentType: 'application/json', json: true },
    { payload: Buffer.from('"review"'), contentType: 'application/json', json: true },
    { payload: Buffer.from('1e999'), contentType: 'application/json', json: true },
    { payload: Buffer.from('{"a":1}{"b":2}'), contentType: 'application/json', json: false },
    { payload: Buffer.from('{"a":NaN}'), contentType: 'application/json', json: false },
    { payload: Buffer.from("{'a':1}"), contentType: 'application/json', json: false },
    { payload: Buffer.from('{"__proto__":{"x":1}}'), contentType: 'application/json', json: true },
  ),
)

// ---- the properties ----

export interface PropertyDef {
  name: string
  /** Cases in `npm test`. */
  testRuns: number
  /** Cases in `npm run fuzz`. */
  fuzzRuns: number
  build(env: FuzzEnv): fc.IRawProperty<unknown, boolean>
}

const anythingAtAll = fc.anything({
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
})

function handleProperty<T>(name: string, testRuns: number, fuzzRuns: number, arb: fc.Arbitrary<T>): PropertyDef {
  return {
    name,
    testRuns,
    fuzzRuns,
    build: (env) =>
      fc.property(arb, modes, (body, mode) => {
        handled(env, name, body, mode)
        return true
      }),
  }
}

export const PROPERTIES: readonly PropertyDef[] = [
  handleProperty('checkPodReview: any JSON value', 300, 20_000, fc.jsonValue()),
  handleProperty(
    'checkPodReview: anything (Map, BigInt, null prototypes, sparse arrays ...)',
    200,
    10_000,
    anythingAtAll,
  ),
  handleProperty('checkPodReview: envelopes around any JSON', 300, 20_000, envelope(fc.jsonValue({ maxDepth: 3 }))),
  handleProperty('checkPodReview: envelopes around anything', 200, 10_000, envelope(anythingAtAll)),
  handleProperty('checkPodReview: mutated real AdmissionReviews', 400, 25_000, mutatedReview),
  {
    name: 'checkPodReview: image references at and past every limit',
    testRuns: 300,
    fuzzRuns: 10_000,
    build: (env) =>
      fc.property(imageCase, fc.constantFrom<Mode>('enforce', 'warn'), (c, mode) => {
        const name = 'image limits'
        const body = podWithImage(c.image)
        const { reply, record } = handled(env, name, body, mode)
        const finding = record.findings?.[0]
        // A blank image is the apiserver's to reject (a Pod) or another tool's to fill in (a
        // template): never a finding of ours (pkg/apis/core/validation validateContainersOnlyForPod).
        if (c.image.trim() === '') {
          if (finding !== undefined || !reply.response.allowed) fail(`blank image ${JSON.stringify(c.image)} judged`)
          return true
        }
        if (finding === undefined) fail(`no finding for ${JSON.stringify(c.image)}`)
        if (c.valid === true && finding.reason === 'invalid-reference')
          fail(`valid reference ${JSON.stringify(c.image)} called invalid`)
        if (c.valid === false) {
          if (finding.reason !== 'invalid-reference')
            fail(`invalid reference ${JSON.stringify(c.image)} answered ${finding.reason}`)
          if (mode === 'enforce' && reply.response.allowed)
            fail(`invalid reference ${JSON.stringify(c.image)} allowed in enforce mode`)
          if (mode === 'warn' && (!reply.response.allowed || (reply.response.warnings ?? []).length === 0))
            fail(`invalid reference ${JSON.stringify(c.image)} not warned in warn mode`)
        }
        return true
      }),
  },
  {
    name: 'checkPodReview: 1,000 to 10,000 containers, nesting 1,000 to 100,000 deep',
    testRuns: 4,
    fuzzRuns: 40,
    build: (env) =>
      fc.property(
        fc.constantFrom<'pod-create' | 'deployment-update-image'>('pod-create', 'deployment-update-image'),
        fc.oneof(fc.constant(10_000), fc.integer({ min: 1_000, max: 10_000 })),
        fc.integer({ min: 1_000, max: 100_000 }),
        modes,
        (name, count, depth, mode) => {
          const body = hugeReview(name, count, (i) =>
            i % 2 === 0 ? `registry.local:5000/team/api:1.${i % 9}` : `myapp:${i % 5 === 0 ? 'dev' : 'v' + i}`,
          )
          const object = (body['request'] as { object: { metadata: { annotations?: Record<string, unknown> } } }).object
          ;(object.metadata.annotations ??= {})['deep'] = nested(depth, depth % 2 === 0)
          const { reply } = handled(env, 'huge', body, mode, HUGE_CASE_BUDGET_MS)
          if (mode === 'enforce' && reply.response.allowed)
            fail(`${count} containers, some missing, allowed in enforce mode`)
          return true
        },
      ),
  },
  {
    name: 'POST /validate: JSON bodies get 200 and an AdmissionReview',
    testRuns: 300,
    fuzzRuns: 10_000,
    build: (env) =>
      // A mutation can make a structure refer to itself; that is no JSON body, so it is left
      // to the in-process properties (which checkPodReview survives) and filtered out here.
      fc.asyncProperty(fc.oneof(jsonReview, envelope(fc.jsonValue({ maxDepth: 3 })), fc.jsonValue()), async (body) => {
        // No known-bug skip here: the route's catch must turn a throwing handler into a 200.
        await checkHttp(env, 'http json', jsonCase(body))
        return true
      }),
  },
  {
    name: 'POST /validate: raw bytes, invalid UTF-8, truncation, content types: 200 or 4xx, never 5xx',
    testRuns: 300,
    fuzzRuns: 10_000,
    build: (env) =>
      fc.asyncProperty(rawCase, async (c) => {
        await checkHttp(env, 'http raw', c)
        return true
      }),
  },
  {
    name: 'POST /validate: 10,000 containers and 100,000-deep nesting over HTTP',
    testRuns: 3,
    fuzzRuns: 20,
    build: (env) =>
      fc.asyncProperty(
        fc.integer({ min: 1_000, max: 10_000 }),
        fc.integer({ min: 1_000, max: 100_000 }),
        fc.boolean(),
        async (count, depth, update) => {
          const body = hugeReview(update ? 'deployment-update-image' : 'pod-create', count, (i) => `myapp:v${i % 50}`)
          await checkHttp(env, 'http huge', jsonCase(body), HUGE_CASE_BUDGET_MS)
          // Built as text: JSON.stringify itself recurses and would overflow first.
          const text = JSON.stringify(fixture('pod-create')).replace(
            '"metadata":{',
            `"metadata":{"deep":${'['.repeat(depth)}${']'.repeat(depth)},`,
          )
          await checkHttp(
            env,
            'http huge',
            { payload: Buffer.from(text), contentType: 'application/json', json: true },
            HUGE_CASE_BUDGET_MS,
          )
          return true
        },
      ),
  },
]
