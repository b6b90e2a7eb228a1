import fc from 'fast-check'
import { readdirSync, readFileSync } from 'node:fs'
import { V1, V1BETA1 } from '../../src/admission/review.js'

// Inputs for the admission properties: arbitrary JSON, envelopes that get past the schema,
// and mutations of the real AdmissionReviews in test/fixtures/admission.

type Json = Record<string, unknown>

const FIXTURE_DIR = new URL('../fixtures/admission/', import.meta.url)

/** The real reviews, parsed once; every use gets a deep copy. */
export const FIXTURES: ReadonlyMap<string, string> = new Map(
  readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => [f.slice(0, -'.json'.length), readFileSync(new URL(f, FIXTURE_DIR), 'utf8')]),
)

export function fixture(name: string): Json {
  const text = FIXTURES.get(name)
  if (text === undefined) throw new Error(`no fixture ${name}`)
  return JSON.parse(text) as Json
}

/** Where each kind keeps its pod spec (as src/workload/pod-template.ts reads it). */
const SPEC_PATH: Record<string, readonly string[]> = {
  Pod: ['spec'],
  PodTemplate: ['template', 'spec'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
}

export function podSpecOf(object: unknown, kind: string): Json | undefined {
  let cur: unknown = object
  for (const step of Object.hasOwn(SPEC_PATH, kind) ? SPEC_PATH[kind]! : ['spec', 'template', 'spec']) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur)) return undefined
    cur = (cur as Json)[step]
  }
  return typeof cur === 'object' && cur !== null && !Array.isArray(cur) ? (cur as Json) : undefined
}

/** Strings that have broken parsers before: prototype keys, controls, odd unicode, the domain's own words. */
export const NASTY_STRINGS: readonly string[] = [
  '',
  ' ',
  '\t',
  '\n',
  '\u0000',
  '\u0007',
  '\u001b[31mred',
  '\u007f',
  '\u0085',
  '\u009b',
  '\u2028',
  '\u2029',
  '\ud800',
  '\udfff',
  'a\ud800b',
  '\ufeff',
  '\u200b',
  '😀',
  'é',
  'e\u0301',
  'İ',
  '\u212a',
  'ǅ',
  'ｐｏｄ',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  '__defineGetter__',
  'Pod',
  'PodTemplate',
  'Deployment',
  'DaemonSet',
  'CronJob',
  'apps',
  'batch',
  'v1',
  'CREATE',
  'UPDATE',
  'DELETE',
  'CONNECT',
  'ephemeralcontainers',
  'status',
  'scale',
  'Never',
  'Always',
  'IfNotPresent',
  'Exists',
  'Equal',
  'In',
  'NotIn',
  'Gt',
  'Lt',
  'DoesNotExist',
  'NoSchedule',
  'NoExecute',
  'PreferNoSchedule',
  'metadata.name',
  'kubernetes.io/hostname',
  'node-a',
  'node-b',
  'node-c',
  'sandbox',
  'default',
  'zone',
  'a',
  'ssd',
  'gpu',
  'dedicated',
  'admission.k8s.io/v1',
  'admission.k8s.io/v1beta1',
  'AdmissionReview',
  '-1',
  '0',
  '9'.repeat(400),
  '1e309',
  'NaN',
  '%s%n',
  '${x}',
  '<script>',
  '../../etc/passwd',
  'x'.repeat(300),
  'é'.repeat(300),
  '😀'.repeat(300),
  '\u0000'.repeat(300),
]

export const nastyString = fc.constantFrom(...NASTY_STRINGS)
export const anyString = fc.oneof(
  { weight: 3, arbitrary: nastyString },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
)

/** Values of the wrong type for any field. */
export const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  anyString,
  fc.constantFrom<unknown>(null, true, false, 0, -1, 1.5, 1e308, -0, [], {}, [null], { '': null }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.jsonValue({ maxDepth: 3 }),
)

// ---- image references at and past every limit ----

export interface ImageCase {
  image: string
  /** What distribution/reference (and so the kubelet) says; undefined when not asserted. */
  valid?: boolean
}

const TAG_HEAD = 'ABCXYZabcxyz0189_'
const TAG_TAIL = TAG_HEAD + '.-'
const HEX = '0123456789abcdef'

function chars(alphabet: string, min: number, max: number): fc.Arbitrary<string> {
  return fc.array(fc.constantFrom(...alphabet.split('')), { minLength: min, maxLength: max }).map((a) => a.join(''))
}

function tagOf(length: number): fc.Arbitrary<string> {
  return fc.tuple(chars(TAG_HEAD, 1, 1), chars(TAG_TAIL, length - 1, length - 1)).map(([h, t]) => h + t)
}

/** A path of exactly `length` characters: lowercase components joined by single slashes. */
function pathOf(length: number): fc.Arbitrary<string> {
  return fc.array(fc.integer({ min: 1, max: Math.max(1, length - 2) }), { maxLength: 4 }).map((cuts) => {
    const out = 'a'.repeat(length).split('')
    for (const c of cuts) if (c >= 1 && c <= length - 2 && out[c - 1] !== '/' && out[c + 1] !== '/') out[c] = '/'
    return out.join('')
  })
}

const hexOf = (n: number): fc.Arbitrary<string> => chars(HEX, n, n)

export const imageCase: fc.Arbitrary<ImageCase> = fc.oneof(
  fc
    .integer({ min: 1, max: 131 })
    .chain((n) => tagOf(n).map((tag) => ({ image: `registry.local:5000/team/app:${tag}`, valid: n <= 128 }))),
  fc.constantFrom(127, 128, 129, 130).chain((n) => tagOf(n).map((tag) => ({ image: `app:${tag}`, valid: n <= 128 }))),
  fc
    .constantFrom(1, 100, 253, 254, 255, 256, 257, 300)
    .chain((n) => pathOf(n).map((p) => ({ image: `registry.local:5000/${p}:v1`, valid: n <= 255 }))),
  // docker.io/library/<name>: the limit counts "library/" too.
  fc.constantFrom(246, 247, 248, 249).map((n) => ({ image: 'b'.repeat(n), valid: n + 'library/'.length <= 255 })),
  fc
    .constantFrom(32, 63, 64, 65, 96, 128)
    .chain((n) => hexOf(n).map((hex) => ({ image: `registry.local:5000/team/app@sha256:${hex}`, valid: n === 64 }))),
  fc.constantFrom(['sha384', 96], ['sha512', 128], ['sha512', 64], ['md5', 64]).chain(([alg, n]) =>
    hexOf(n as number).map((hex) => ({
      image: `app:1@${alg}:${hex}`,
      valid: (alg === 'sha384' && n === 96) || (alg === 'sha512' && n === 128),
    })),
  ),
  hexOf(64).map((hex) => ({ image: `app@sha256:${hex.toUpperCase().replace(/^[0-9]/, 'A')}`, valid: false })),
  hexOf(64).map((hex) => ({ image: hex, valid: false })),
  hexOf(64).map((hex) => ({ image: `sha256:${hex}`, valid: true })),
  hexOf(64).map((hex) => ({ image: `registry.local:5000/team/app:${'t'.repeat(128)}@sha256:${hex}`, valid: true })),
  fc.constantFrom<ImageCase>(
    { image: '', valid: false },
    { image: ' ', valid: false },
    { image: ' app', valid: false },
    { image: 'app ', valid: false },
    { image: 'a pp', valid: false },
    { image: '\tapp', valid: false },
    { image: 'app\n', valid: false },
    { image: 'appé', valid: false },
    { image: 'ａｐｐ', valid: false },
    { image: 'app:tägé', valid: false },
    { image: 'App:1', valid: false },
    { image: 'app:V1', valid: true },
    { image: 'app:', valid: false },
    { image: 'app@', valid: false },
    { image: ':1', valid: false },
    { image: '/app', valid: false },
    { image: 'a//b', valid: false },
    { image: 'app:.1', valid: false },
    { image: 'app:-1', valid: false },
    { image: 'app:_1', valid: true },
    { image: 'localhost/app', valid: true },
    { image: 'localhost:5000/app:1', valid: true },
    { image: '[::1]:5000/app:1', valid: true },
    { image: '[::1]', valid: false },
    { image: 'a__b', valid: true },
    { image: 'a___b', valid: false },
    { image: 'a---b', valid: true },
    { image: 'a.-b', valid: false },
    { image: 'myapp:dev', valid: true },
    { image: 'busybox:1.36', valid: true },
    { image: '😀', valid: false },
    { image: '\u0000', valid: false },
    { image: 'a\u202eb', valid: false },
  ),
  anyString.map((image) => ({ image })),
)

// ---- placement shapes ----

const operator = fc.oneof(fc.constantFrom('In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt'), anyString)
const requirement = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record(
      {
        key: fc.oneof(nastyString, fc.constantFrom('zone', 'disk', 'metadata.name')),
        operator,
        values: fc.oneof(fc.array(fc.oneof(nastyString, fc.integer().map(String)), { maxLength: 5 }), wrongValue),
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: wrongValue },
)
const term = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record(
      {
        matchExpressions: fc.oneof(fc.array(requirement, { maxLength: 4 }), wrongValue),
        matchFields: fc.oneof(fc.array(requirement, { maxLength: 3 }), wrongValue),
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: wrongValue },
)
const affinity = fc.oneof(
  fc.record(
    {
      nodeAffinity: fc.oneof(
        fc.record(
          {
            requiredDuringSchedulingIgnoredDuringExecution: fc.oneof(
              fc.record(
                { nodeSelectorTerms: fc.oneof(fc.array(term, { maxLength: 4 }), wrongValue) },
                { requiredKeys: [] },
              ),
              wrongValue,
            ),
          },
          { requiredKeys: [] },
        ),
        wrongValue,
      ),
    },
    { requiredKeys: [] },
  ),
  wrongValue,
)
const toleration = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record(
      {
        key: anyString,
        operator: fc.oneof(fc.constantFrom('Exists', 'Equal'), anyString),
        value: anyString,
        effect: fc.oneof(fc.constantFrom('NoSchedule', 'NoExecute', 'PreferNoSchedule', ''), anyString),
        tolerationSeconds: fc.oneof(fc.integer(), wrongValue),
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: wrongValue },
)
const nodeSelector = fc.oneof(
  fc.dictionary(anyString, fc.oneof({ weight: 5, arbitrary: anyString }, { weight: 1, arbitrary: wrongValue }), {
    maxKeys: 5,
  }),
  wrongValue,
)

export const placementEdit: fc.Arbitrary<[string, unknown]> = fc.oneof(
  nodeSelector.map((v): [string, unknown] => ['nodeSelector', v]),
  fc.oneof(fc.array(toleration, { maxLength: 6 }), wrongValue).map((v): [string, unknown] => ['tolerations', v]),
  affinity.map((v): [string, unknown] => ['affinity', v]),
  fc.oneof(anyString, wrongValue).map((v): [string, unknown] => ['nodeName', v]),
  fc.oneof(fc.boolean(), wrongValue).map((v): [string, unknown] => ['hostNetwork', v]),
)

const container = fc.record(
  {
    name: fc.oneof(anyString, wrongValue),
    image: fc.oneof(
      imageCase.map((c) => c.image),
      wrongValue,
    ),
    imagePullPolicy: fc.oneof(
      { weight: 5, arbitrary: fc.constantFrom('Never', 'Always', 'IfNotPresent') },
      { weight: 1, arbitrary: fc.oneof(anyString, wrongValue) },
    ),
  },
  { requiredKeys: [] },
)

// ---- mutations of the real reviews ----

export type Mutation =
  | { op: 'delete'; path: number[] }
  | { op: 'replace'; path: number[]; value: unknown }
  | { op: 'image'; index: number; image: string }
  | { op: 'placement'; field: string; value: unknown }
  | { op: 'containers'; key: string; value: unknown }
  | {
      op: 'gvk'
      field: 'group' | 'version' | 'kind' | 'operation' | 'subResource' | 'uid' | 'namespace' | 'apiVersion'
      value: unknown
      drop: boolean
    }
  | { op: 'nest'; path: number[]; depth: number; array: boolean }

const path = fc.array(fc.nat(), { minLength: 1, maxLength: 10 })

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  path.map((p): Mutation => ({ op: 'delete', path: p })),
  fc.record({ path, value: wrongValue }).map((r): Mutation => ({ op: 'replace', ...r })),
  fc.record({ index: fc.nat(5), image: imageCase.map((c) => c.image) }).map((r): Mutation => ({ op: 'image', ...r })),
  placementEdit.map(([field, value]): Mutation => ({ op: 'placement', field, value })),
  fc
    .record({
      key: fc.constantFrom('containers', 'initContainers', 'ephemeralContainers'),
      value: fc.oneof(fc.array(container, { maxLength: 8 }), wrongValue),
    })
    .map((r): Mutation => ({ op: 'containers', ...r })),
  fc
    .record({
      field: fc.constantFrom<
        'group' | 'version' | 'kind' | 'operation' | 'subResource' | 'uid' | 'namespace' | 'apiVersion'
      >('group', 'version', 'kind', 'operation', 'subResource', 'uid', 'namespace', 'apiVersion'),
      value: fc.oneof(nastyString, wrongValue),
      drop: fc.boolean(),
    })
    .map((r): Mutation => ({ op: 'gvk', ...r })),
  fc
    .record({ path, depth: fc.integer({ min: 1, max: 2000 }), array: fc.boolean() })
    .map((r): Mutation => ({ op: 'nest', ...r })),
)

/** Walks `path` through objects and arrays; the container and key of where it stops. */
function locate(root: unknown, steps: number[]): { parent: Json | unknown[]; key: string | number } | undefined {
  let parent: Json | unknown[] | undefined
  let key: string | number | undefined
  let cur: unknown = root
  for (const step of steps) {
    if (Array.isArray(cur)) {
      if (cur.length === 0) break
      parent = cur
      key = step % cur.length
    } else if (typeof cur === 'object' && cur !== null) {
      const keys = Object.keys(cur)
      if (keys.length === 0) break
      parent = cur as Json
      key = keys[step % keys.length]!
    } else {
      break
    }
    cur = (parent as Record<string | number, unknown>)[key]
  }
  return parent === undefined || key === undefined ? undefined : { parent, key }
}

export function nested(depth: number, array: boolean, leaf: unknown = 'leaf'): unknown {
  let v: unknown = leaf
  for (let i = 0; i < depth; i++) v = array ? [v] : { n: v }
  return v
}

function requestOf(review: Json): Json | undefined {
  const r = review['request']
  return typeof r === 'object' && r !== null && !Array.isArray(r) ? (r as Json) : undefined
}

export function applyMutation(review: Json, m: Mutation): void {
  const request = requestOf(review)
  const kindField = request?.['kind']
  const kind = typeof kindField === 'object' && kindField !== null ? String((kindField as Json)['kind']) : ''
  switch (m.op) {
    case 'delete': {
      const at = locate(review, m.path)
      if (at === undefined) return
      if (Array.isArray(at.parent)) at.parent.splice(at.key as number, 1)
      else delete at.parent[at.key as string]
      return
    }
    case 'replace':
    case 'nest': {
      const at = locate(review, m.path)
      if (at === undefined) return
      const value = m.op === 'replace' ? m.value : nested(m.depth, m.array)
      ;(at.parent as Record<string | number, unknown>)[at.key] = value
      return
    }
    case 'image': {
      const spec = podSpecOf(request?.['object'], kind)
      const list = spec?.['containers']
      if (!Array.isArray(list) || list.length === 0) return
      const c: unknown = list[m.index % list.length]
      if (typeof c === 'object' && c !== null) Object.assign(c, { image: m.image, imagePullPolicy: 'Never' })
      return
    }
    case 'placement': {
      const spec = podSpecOf(request?.['object'], kind)
      if (spec !== undefined) spec[m.field] = m.value
      return
    }
    case 'containers': {
      const spec = podSpecOf(request?.['object'], kind)
      if (spec !== undefined) spec[m.key] = m.value
      return
    }
    case 'gvk': {
      if (request === undefined) return
      let target: Json = request
      if (m.field === 'apiVersion') target = review
      else if (m.field === 'group' || m.field === 'version' || m.field === 'kind') {
        if (typeof kindField !== 'object' || kindField === null) return
        target = kindField as Json
      }
      if (m.drop) delete target[m.field]
      else target[m.field] = m.value
      return
    }
  }
}

export const fixtureName = fc.constantFrom(...FIXTURES.keys())

/** A real review with a handful of mutations applied. */
export const mutatedReview: fc.Arbitrary<Json> = fc
  .tuple(fixtureName, fc.array(mutation, { minLength: 1, maxLength: 6 }))
  .map(([name, mutations]) => {
    const review = fixture(name)
    for (const m of mutations) applyMutation(review, m)
    return review
  })

/** Envelopes that get past the AdmissionReview schema more often than random JSON does. */
export const envelope = (inner: fc.Arbitrary<unknown>): fc.Arbitrary<Json> =>
  fc.record(
    {
      apiVersion: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(V1, V1BETA1) }, { weight: 1, arbitrary: inner }),
      kind: fc.oneof({ weight: 4, arbitrary: fc.constant('AdmissionReview') }, { weight: 1, arbitrary: inner }),
      request: fc.oneof(
        {
          weight: 4,
          arbitrary: fc.record(
            {
              uid: fc.oneof(
                { weight: 4, arbitrary: fc.uuid() },
                { weight: 1, arbitrary: anyString },
                { weight: 1, arbitrary: inner },
              ),
              kind: fc.oneof(
                {
                  weight: 4,
                  arbitrary: fc.record(
                    {
                      group: fc.oneof(fc.constantFrom('', 'apps', 'batch'), inner),
                      version: fc.constant('v1'),
                      kind: fc.oneof(
                        fc.constantFrom('Pod', 'Deployment', 'DaemonSet', 'CronJob', 'PodTemplate'),
                        nastyString,
                        inner,
                      ),
                    },
                    { requiredKeys: [] },
                  ),
                },
                { weight: 1, arbitrary: inner },
              ),
              operation: fc.oneof(
                { weight: 4, arbitrary: fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT') },
                { weight: 1, arbitrary: inner },
              ),
              namespace: fc.oneof(
                { weight: 4, arbitrary: fc.constantFrom('default', 'sandbox', '') },
                { weight: 1, arbitrary: inner },
              ),
              name: fc.oneof({ weight: 4, arbitrary: anyString }, { weight: 1, arbitrary: inner }),
              subResource: fc.oneof(
                { weight: 4, arbitrary: fc.constantFrom('', 'ephemeralcontainers', 'status') },
                { weight: 1, arbitrary: inner },
              ),
              userInfo: fc.oneof(
                {
                  weight: 4,
                  arbitrary: fc.record(
                    { username: anyString, groups: fc.array(anyString, { maxLength: 3 }) },
                    { requiredKeys: [] },
                  ),
                },
                { weight: 1, arbitrary: inner },
              ),
              dryRun: fc.oneof({ weight: 4, arbitrary: fc.boolean() }, { weight: 1, arbitrary: inner }),
              object: fc.oneof(
                { weight: 1, arbitrary: inner },
                {
                  weight: 3,
                  arbitrary: fc.record(
                    {
                      spec: fc.oneof(inner, fc.record({ containers: fc.array(container, { maxLength: 4 }) })),
                      template: fc.record({ spec: fc.record({ containers: fc.array(container, { maxLength: 4 }) }) }),
                    },
                    { requiredKeys: [] },
                  ),
                },
              ),
              oldObject: inner,
            },
            { requiredKeys: ['uid', 'kind', 'operation'] },
          ),
        },
        { weight: 1, arbitrary: inner },
      ),
    },
    { requiredKeys: [] },
  )

/** A pod whose only container is `Never` with this image: what the kubelet would do with it is known. */
export function podWithImage(image: string): Json {
  const review = fixture('pod-create')
  const spec = podSpecOf(requestOf(review)?.['object'], 'Pod')!
  spec['initContainers'] = []
  spec['containers'] = [{ name: 'app', image, imagePullPolicy: 'Never' }]
  return review
}

/** A review carrying `count` containers (and for UPDATE the same number before). */
export function hugeReview(
  name: 'pod-create' | 'deployment-update-image',
  count: number,
  imageOf: (i: number) => string,
): Json {
  const review = fixture(name)
  const request = requestOf(review)!
  const kind = name === 'pod-create' ? 'Pod' : 'Deployment'
  const make = (suffix: string) =>
    Array.from({ length: count }, (_, i) => ({
      name: `c${i}`,
      image: imageOf(i) + suffix,
      imagePullPolicy: i % 3 === 0 ? 'Always' : 'Never',
    }))
  podSpecOf(request['object'], kind)!['containers'] = make('')
  const old = podSpecOf(request['oldObject'], kind)
  if (old !== undefined) old['containers'] = make('-old')
  return review
}
