import { Ajv } from 'ajv'
import t from 'tap'
import { NODE_IMAGE_SET_SCHEMA } from '../../src/api/nodeimageset-schema.js'
import { toJsonSchema } from '../../src/api/openapi.js'
import type {
  NodeImageSet,
  NodeImageSetImage,
  NodeImageSetRuntime,
  RuntimeImage,
  RuntimeInfo,
} from '../../src/api/types.js'
import { toNodeImages } from '../../src/inventory/convert.js'

// One schema, several readers: the apiserver (the CRD), the inventory reader and the write
// guard (both toNodeImages). The reader refuses only what the apiserver refuses, and
// takes everything the apiserver takes.

// Type-level: what the agent reads from CRI it can write, and the root type declares
// exactly the schema's root fields.
const image: RuntimeImage = { id: 'sha256:1', repoTags: [], repoDigests: [], size: 1, pinned: false }
const wireImage: NodeImageSetImage = image
const info: RuntimeInfo = { name: 'containerd', version: '2.0', endpoint: 'unix:///run/containerd/containerd.sock' }
const wireRuntime: NodeImageSetRuntime = info
type RootKeys = keyof typeof NODE_IMAGE_SET_SCHEMA.properties
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const rootKeysAgree: Same<keyof NodeImageSet, RootKeys> = true

t.test('the TypeScript root type and the schema agree', (t) => {
  t.ok(rootKeysAgree)
  t.same(wireImage, image)
  t.same(wireRuntime, info)
  t.strictSame(Object.keys(NODE_IMAGE_SET_SCHEMA.properties).sort(), [
    'apiVersion',
    'kind',
    'metadata',
    'spec',
    'status',
  ])
  t.end()
})

// The apiserver's view: structural validation with formats; pruning is not refusal.
const apiAjv = new Ajv({ strict: true, allowUnionTypes: true, allErrors: true })
apiAjv.addFormat('date-time', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/)
const apiserverAccepts = apiAjv.compile(toJsonSchema(NODE_IMAGE_SET_SCHEMA))

const good: NodeImageSet = {
  apiVersion: 'neverpull.dev/v1alpha1',
  kind: 'NodeImageSet',
  metadata: { name: 'node-a' },
  spec: {
    nodeName: 'node-a',
    runtime: { name: 'containerd', version: 'v2.0.0', endpoint: 'unix:///run/containerd/containerd.sock' },
    images: [{ id: 'sha256:1', repoTags: ['docker.io/library/nginx:1.27'], repoDigests: [], size: 10, pinned: false }],
  },
  status: { observedTime: '2026-11-30T10:00:00Z', imageCount: 1, conditions: [{ type: 'Ready', status: 'True' }] },
}

function withSpec(spec: Record<string, unknown>): unknown {
  return { ...good, spec: { ...good.spec, ...spec } }
}
function withImage(fields: Record<string, unknown>): unknown {
  return withSpec({ images: [{ id: 'sha256:1', ...fields }] })
}

const accepted: Array<[string, unknown]> = [
  ['as the agent writes it', good],
  ['an empty node', withSpec({ images: [], runtime: undefined })],
  ['no status yet', { ...good, status: undefined }],
  ['image with only an id', withImage({})],
  ['size above int64 as a decimal string', withImage({ size: '18446744073709551615' })],
  ['a field the apiserver would prune', withSpec({ future: true })],
  ['runtime without a version', withSpec({ runtime: { name: 'cri-o' } })],
]

// Where the reader once took more than the CRD allows (nodeName missing, an empty id,
// long runtime names, fractional sizes, bad conditions): the apiserver refuses these, so
// the reader refusing them costs nothing and keeps both views the same.
const refused: Array<[string, unknown]> = [
  ['no spec.nodeName', withSpec({ nodeName: undefined })],
  ['empty spec.nodeName', withSpec({ nodeName: '' })],
  ['no images list', withSpec({ images: undefined })],
  ['image without id', withSpec({ images: [{ repoTags: [] }] })],
  ['empty image id', withImage({ id: '' })],
  ['runtime name past 253 characters', withSpec({ runtime: { name: 'x'.repeat(254) } })],
  ['fractional size', withImage({ size: 1.5 })],
  ['size as a boolean', withImage({ size: true })],
  ['a numeric tag', withImage({ repoTags: [7] })],
  ['negative imageCount', { ...good, status: { imageCount: -1 } }],
  [
    'condition status outside True/False/Unknown',
    { ...good, status: { conditions: [{ type: 'Ready', status: 'Yes' }] } },
  ],
  ['condition without type', { ...good, status: { conditions: [{ status: 'True' }] } }],
]

const clean = (x: unknown): unknown => JSON.parse(JSON.stringify(x)) as unknown

t.test('the reader takes everything the apiserver takes', (t) => {
  for (const [name, obj] of accepted) {
    t.ok(apiserverAccepts(clean(obj)), `${name}: apiserver ${apiAjv.errorsText(apiserverAccepts.errors)}`)
    const read = toNodeImages(clean(obj))
    t.ok(read.ok, `${name}: reader ${read.ok ? '' : read.error}`)
  }
  t.end()
})

t.test('the reader refuses what the apiserver refuses', (t) => {
  for (const [name, obj] of refused) {
    t.notOk(apiserverAccepts(clean(obj)), `${name}: apiserver refuses`)
    const read = toNodeImages(clean(obj))
    t.notOk(read.ok, `${name}: reader refuses`)
    if (!read.ok) t.match(read.error, /^malformed NodeImageSet: \/\S* /, `${name}: says where`)
  }
  t.end()
})

t.test("one deliberate leniency: formats are the apiserver's job", (t) => {
  const obj = clean({ ...good, status: { observedTime: 'yesterday' } })
  t.notOk(apiserverAccepts(obj), 'apiserver refuses a non-RFC 3339 time')
  const read = toNodeImages(obj)
  t.ok(read.ok, 'the reader keeps the image list')
  if (read.ok) t.ok(Number.isNaN(read.value.observedAt), 'and counts it as never observed')
  t.end()
})
