import { readFileSync } from 'node:fs'
import t from 'tap'
import { stringify } from 'yaml'
import { toNodeFacts } from '../../src/inventory/convert.js'
import { loadInventoryText } from '../../src/inventory/file.js'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'
import type { NodeFacts } from '../../src/api/types.js'

// Nodes as real kubelets send them: the 1.19 fixture (`names: null` for an image that lost
// its last tag) and the shapes other versions produce (absent images, nodeInfo,
// conditions; nil slices as null). None of them may cost the fields that matter.

type Json = Record<string, unknown>
const fixture = (): Json =>
  JSON.parse(readFileSync(new URL('../fixtures/kubelet-1.19/node-1.19-kubelet.json', import.meta.url), 'utf8')) as Json
const status = (n: Json): Json => n.status as Json
const images = (n: Json): Json[] => status(n).images as Json[]

function read(n: unknown): { value: NodeFacts; skipped: Array<{ field: string; reason: string }> } {
  const r = toNodeFacts(n)
  if (!r.ok) throw new Error(r.error)
  return r
}

const FIXTURE_NAMES = [
  'docker.io/library/neverpull-guard:dev',
  'localhost/neverpull-guard:dev',
  'k8s.gcr.io/pause:3.2',
  'docker.io/library/busybox@sha256:8b7dd4cf147e2b2e758eb524641bb6f1c5c30a69cb0d0e268a55e23a77c0d516',
  'docker.io/library/busybox:latest',
  'docker.io/library/myapp:dev',
  'docker.io/library/myapp:1.0',
  'localhost:5000/local/app:v1',
  'docker.io/library/late:1',
  'ghcr.io/org/tool@sha256:a5d7fc451a9393846a553c4873f17c7d7b7e2ea233be3190dcf5bb95b333b2d7',
  'ghcr.io/org/tool:1',
]

t.test('a 1.19 kubelet Node with "names": null is read whole, nothing skipped', (t) => {
  const node = fixture()
  t.equal(images(node)[3]?.names, null, 'the fixture is what the issue saw')
  const { value, skipped } = read(node)
  t.same(skipped, [], 'null is how Go writes an empty list: understood, not skipped')
  t.equal(value.name, 'np-node-1')
  t.equal(value.labels['kubernetes.io/hostname'], 'np-node-1')
  t.equal(value.ready, true)
  t.equal(value.unschedulable, false)
  t.same(value.taints, [])
  t.same(value.statusImageNames, FIXTURE_NAMES)
  t.end()
})

t.test('shapes of other kubelet versions: absent or null lists, maps and sections', (t) => {
  const variants: Array<[string, (n: Json) => void, Partial<NodeFacts>]> = [
    ['names: [] (newer kubelets)', (n) => (images(n)[3]!.names = []), { statusImageNames: FIXTURE_NAMES }],
    ['names absent', (n) => delete images(n)[3]!.names, { statusImageNames: FIXTURE_NAMES }],
    ['status.images absent', (n) => delete status(n).images, { statusImageNames: [], ready: true }],
    ['status.images null', (n) => (status(n).images = null), { statusImageNames: [] }],
    ['nodeInfo absent', (n) => delete status(n).nodeInfo, { statusImageNames: FIXTURE_NAMES, ready: true }],
    ['conditions absent', (n) => delete status(n).conditions, { ready: undefined, statusImageNames: FIXTURE_NAMES }],
    ['conditions null', (n) => (status(n).conditions = null), { ready: undefined }],
    ['status absent', (n) => delete n.status, { ready: undefined, statusImageNames: [] }],
    [
      'spec null, labels null',
      (n) => ((n.spec = null), ((n.metadata as Json).labels = null)),
      { labels: {}, taints: [], unschedulable: false },
    ],
    [
      'taints null, unschedulable null',
      (n) => (n.spec = { taints: null, unschedulable: null }),
      { taints: [], unschedulable: false },
    ],
    [
      'cordoned and tainted',
      (n) =>
        (n.spec = {
          unschedulable: true,
          taints: [
            { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule', timeAdded: null },
            { key: 'gpu', value: 'a100', effect: 'NoExecute' },
          ],
        }),
      {
        unschedulable: true,
        taints: [
          { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' },
          { key: 'gpu', value: 'a100', effect: 'NoExecute' },
        ],
      },
    ],
  ]
  for (const [name, change, expected] of variants) {
    const node = fixture()
    change(node)
    const { value, skipped } = read(node)
    t.same(skipped, [], `${name}: nothing skipped`)
    t.match(value, { name: 'np-node-1', ...expected }, name)
    if (expected.statusImageNames !== undefined)
      t.same(value.statusImageNames, expected.statusImageNames, `${name}: status.images`)
  }
  t.end()
})

t.test('what cannot be understood is left out alone, named, and the rest is kept', (t) => {
  const cases: Array<[string, (n: Json) => void, Array<{ field: string; reason: string }>, (v: NodeFacts) => void]> = [
    [
      'names is a string',
      (n) => (images(n)[3]!.names = 'docker.io/library/x:1'),
      [{ field: 'status.images.names', reason: 'status.images[3].names is a string, not a list' }],
      (v) => t.same(v.statusImageNames, FIXTURE_NAMES),
    ],
    [
      'one name is a number',
      (n) => (images(n)[4]!.names = [7, 'docker.io/library/myapp:dev']),
      [{ field: 'status.images.names', reason: 'status.images[4].names[0] is a number, not a string' }],
      (v) => t.same(v.statusImageNames, FIXTURE_NAMES),
    ],
    [
      'an image entry is not an object',
      (n) => (images(n)[0] = 'neverpull-guard:dev' as unknown as Json),
      [{ field: 'status.images', reason: 'status.images[0] is a string, not an object' }],
      (v) => t.same(v.statusImageNames, FIXTURE_NAMES.slice(2)),
    ],
    [
      'status.images is an object',
      (n) => (status(n).images = {}),
      [{ field: 'status.images', reason: 'status.images is an object, not a list' }],
      (v) => (t.same(v.statusImageNames, []), t.equal(v.ready, true)),
    ],
    [
      'taints is a string',
      (n) => (n.spec = { taints: 'nope', unschedulable: true }),
      [{ field: 'spec.taints', reason: 'spec.taints is a string, not a list' }],
      (v) => (t.equal(v.unschedulable, true, 'cordon still read'), t.same(v.taints, [])),
    ],
    [
      'one taint has no key',
      (n) => (n.spec = { taints: [{ effect: 'NoSchedule' }, { key: 'a', effect: 'NoSchedule' }] }),
      [
        {
          field: 'spec.taints',
          reason: 'spec.taints[0] is an object, not a taint with a string key, effect and value',
        },
      ],
      (v) => t.same(v.taints, [{ key: 'a', effect: 'NoSchedule' }]),
    ],
    [
      'unschedulable is a string',
      (n) => (n.spec = { unschedulable: 'yes' }),
      [{ field: 'spec.unschedulable', reason: 'spec.unschedulable is a string, not a boolean' }],
      (v) => t.equal(v.unschedulable, false),
    ],
    [
      'a label value is a number',
      (n) => (((n.metadata as Json).labels as Json).zone = 3),
      [{ field: 'metadata.labels', reason: 'metadata.labels["zone"] is a number, not a string' }],
      (v) => (t.notOk('zone' in v.labels), t.equal(v.labels['kubernetes.io/hostname'], 'np-node-1')),
    ],
    [
      'a condition is a list',
      (n) => (status(n).conditions = [[], ...(status(n).conditions as unknown[])]),
      [{ field: 'status.conditions', reason: 'status.conditions[0] is a list, not an object' }],
      (v) => t.equal(v.ready, true),
    ],
  ]
  for (const [name, change, skipped, check] of cases) {
    const node = fixture()
    change(node)
    const r = read(node)
    t.same(r.skipped, skipped, name)
    t.equal(r.value.labels['kubernetes.io/hostname'], 'np-node-1', `${name}: labels kept`)
    check(r.value)
  }
  t.end()
})

t.test('only a Node without a name is unusable', (t) => {
  t.match(toNodeFacts({ metadata: {} }), {
    ok: false,
    error: 'malformed Node: /metadata/name must be a non-empty string',
  })
  t.match(toNodeFacts({ metadata: { name: '' } }), { ok: false })
  t.match(toNodeFacts('node'), { ok: false, error: 'malformed Node: (root) is a string, not an object' })
  t.match(toNodeFacts({ metadata: { name: 'bare' } }), {
    ok: true,
    value: { name: 'bare', labels: {}, taints: [], unschedulable: false, ready: undefined, statusImageNames: [] },
    skipped: [],
  })
  t.end()
})

t.test('inventory file: a kubectl snapshot with the 1.19 Node loads, odd fields are reported', (t) => {
  const good = fixture()
  const odd = fixture()
  ;(odd.metadata as Json).name = 'np-node-2'
  images(odd)[3]!.names = 'oops'
  const text = stringify({ apiVersion: 'v1', kind: 'List', items: [good, odd] })
  const index = new InventoryIndex({ staleAfterMs: 60_000 })
  const summary = loadInventoryText(text, 'nodes.yaml', index, Date.now())
  t.equal(summary.nodes, 2)
  t.same(summary.skipped, ['object 2 (Node np-node-2): status.images[3].names is a string, not a list; left out'])
  t.equal(index.nodesWithImage('docker.io/library/myapp:1.0')?.size, 2, 'both nodes prove myapp:1.0 by status.images')
  t.throws(
    () => loadInventoryText(stringify({ apiVersion: 'v1', kind: 'Node', metadata: {} }), 'bad.yaml', index, Date.now()),
    { file: 'bad.yaml', message: 'bad.yaml: object 1: malformed Node: /metadata/name must be a non-empty string' },
  )
  t.end()
})

t.test("inventory file: a namespace's steer label is read as the watch reads it", (t) => {
  const index = new InventoryIndex({ staleAfterMs: 60_000 })
  const ns = (name: string, steer?: string) => ({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, ...(steer === undefined ? {} : { labels: { 'neverpull.dev/steer': steer } }) },
  })
  const text = stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [ns('on', 'true'), ns('off', 'false'), ns('typo', 'yes'), ns('plain')],
  })
  loadInventoryText(text, 'namespaces.yaml', index, Date.now())
  t.equal(index.namespaceSteer('on'), true)
  t.equal(index.namespaceSteer('off'), false)
  t.equal(index.namespaceSteer('typo'), undefined, 'neither true nor false: the global --steer applies')
  t.equal(index.namespaceSteer('plain'), undefined)
  t.end()
})
