import { Ajv } from 'ajv'
import jsonpatch from 'fast-json-patch'
import t from 'tap'
import { eligibleNodes } from '../../src/placement/placement.js'
import {
  steerPod,
  steeringFor,
  type PatchOperation,
  type PodSteering,
  type SteerPolicy,
} from '../../src/decision/steer.js'
import { extractPodTemplate } from '../../src/workload/pod-template.js'
import { buildIndex, NOW, STALE_MS } from '../helpers/inventory.js'
import {
  review,
  type FixtureContainer,
  type FixtureMeta,
  type FixtureObject,
  type FixturePod,
  type FixturePodSpec,
} from '../helpers/fixtures.js'

const APP = 'docker.io/library/myapp:1.0'
const DEV = 'docker.io/library/myapp:dev'
const BUSY = 'docker.io/library/busybox:1.36'
const ONLY_A1 = 'docker.io/library/tool:1'

const index = buildIndex([
  { name: 'a1', labels: { zone: 'a', disk: 'ssd', pool: 'app' }, images: [APP, DEV, BUSY, ONLY_A1] },
  { name: 'a2', labels: { zone: 'a', disk: 'ssd', pool: 'app' }, images: [APP, DEV, BUSY] },
  { name: 'a3', labels: { zone: 'a', disk: 'ssd' }, images: [BUSY, DEV] },
  { name: 'a4', labels: { zone: 'a', disk: 'hdd', pool: 'app' }, images: [APP, BUSY] },
  { name: 'b1', labels: { zone: 'b', disk: 'ssd' }, images: [APP] },
  { name: 'b2', labels: { zone: 'b' }, images: [] },
  { name: 'x1', labels: { zone: 'x' }, images: [APP] },
  { name: 'x2', labels: { zone: 'x' }, images: [BUSY], age: STALE_MS * 2 },
  { name: 'x3', labels: { zone: 'x' } },
  { name: 'g1', labels: { zone: 'a', disk: 'ssd' }, taints: [{ key: 'gpu', effect: 'NoSchedule' }], images: [APP] },
])

const POLICY: SteerPolicy = { maxNodes: 100 }

type Json = Record<string, unknown>

interface PodShape {
  images?: string[]
  nodeSelector?: Record<string, string>
  affinity?: FixturePodSpec['affinity']
  annotations?: Record<string, string>
  ownerReferences?: Json[]
  nodeName?: string
  pullPolicy?: string
}

function pod(shape: PodShape = {}): FixturePod {
  const images = shape.images ?? ['myapp:1.0']
  const container = (image: string, i: number): FixtureContainer => ({
    name: `c${i}`,
    image,
    imagePullPolicy: shape.pullPolicy ?? 'Never',
  })
  const spec: FixturePodSpec = {
    containers: [container(images[0] ?? 'myapp:1.0', 0), ...images.slice(1).map((image, i) => container(image, i + 1))],
  }
  if (shape.nodeSelector !== undefined) spec['nodeSelector'] = shape.nodeSelector
  if (shape.affinity !== undefined) spec['affinity'] = shape.affinity
  if (shape.nodeName !== undefined) spec['nodeName'] = shape.nodeName
  const metadata: FixtureMeta = { name: 'web', namespace: 'team' }
  if (shape.annotations !== undefined) metadata['annotations'] = shape.annotations
  if (shape.ownerReferences !== undefined) metadata['ownerReferences'] = shape.ownerReferences
  return { apiVersion: 'v1', kind: 'Pod', metadata, spec }
}

const required = (...terms: Json[]) => ({
  nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } },
})
const expr = (key: string, operator: string, ...values: string[]) => ({ key, operator, values })
const name = (n: string) => ({ key: 'metadata.name', operator: 'In', values: [n] })

function steer(p: unknown, policy = POLICY, view = index): PodSteering {
  const r = steerPod(view, p, policy, NOW)
  if (!r.ok) throw new Error(r.error)
  return r.steering
}

function apply(p: FixturePod, patch: PatchOperation[]): FixturePod {
  return jsonpatch.applyPatch(jsonpatch.deepClone(p) as FixturePod, patch as jsonpatch.Operation[], true).newDocument
}

// What the apiserver's validation asks of node affinity (pkg/apis/core/validation:
// ValidateNodeSelector, ValidateNodeSelectorRequirement, validateNodeFieldSelectorRequirement).
const requirement = {
  type: 'object',
  required: ['key', 'operator'],
  additionalProperties: false,
  properties: {
    key: { type: 'string', minLength: 1 },
    operator: { enum: ['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt'] },
    values: { type: 'array', items: { type: 'string' } },
  },
  allOf: [
    {
      if: { properties: { operator: { enum: ['In', 'NotIn'] } } },
      then: { required: ['values'], properties: { values: { minItems: 1 } } },
    },
    {
      if: { properties: { operator: { enum: ['Exists', 'DoesNotExist'] } } },
      then: { properties: { values: { maxItems: 0 } } },
    },
  ],
}
const fieldRequirement = {
  type: 'object',
  required: ['key', 'operator', 'values'],
  additionalProperties: false,
  properties: {
    key: { const: 'metadata.name' },
    operator: { enum: ['In', 'NotIn'] },
    values: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, maxItems: 1 },
  },
}
const affinitySchema = {
  type: 'object',
  properties: {
    nodeAffinity: {
      type: 'object',
      additionalProperties: false,
      properties: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          type: 'object',
          required: ['nodeSelectorTerms'],
          additionalProperties: false,
          properties: {
            nodeSelectorTerms: {
              type: 'array',
              minItems: 1,
              items: {
                type: 'object',
                additionalProperties: false,
                properties: {
                  matchExpressions: { type: 'array', items: requirement },
                  matchFields: { type: 'array', items: fieldRequirement },
                },
              },
            },
          },
        },
        preferredDuringSchedulingIgnoredDuringExecution: { type: 'array' },
      },
    },
  },
}
const validAffinity = new Ajv({ allErrors: true, strict: false }).compile(affinitySchema)

/** The nodes a pod may land on, by name, as the scheduler's filters (and this project) see them. */
function eligible(p: FixturePod): string[] {
  const x = extractPodTemplate('Pod', p)
  if (!x.ok || x.template === null) throw new Error('not a pod')
  const names: string[] = []
  const bits = eligibleNodes(index, x.template.placement).nodes
  for (let slot = 0; slot < bits.length * 32; slot++)
    if ((bits[slot >>> 5]! >>> (slot & 31)) & 1) names.push(index.nameOf(slot))
  return names.sort()
}

t.test('the patch on table inputs: where the pod may land afterwards, and its own terms kept', async (t) => {
  const preferred = {
    preferredDuringSchedulingIgnoredDuringExecution: [
      { weight: 10, preference: { matchExpressions: [expr('disk', 'In', 'ssd')] } },
    ],
  }
  const table: Array<[string, FixturePod, string[], string, (after: FixturePod) => void]> = [
    [
      'no affinity: one term per node of S',
      pod({ nodeSelector: { zone: 'a' } }),
      ['a1', 'a2', 'a4'],
      '3 of 4 eligible nodes',
      (after) =>
        t.same(
          after['spec'].affinity,
          required({ matchFields: [name('a1')] }, { matchFields: [name('a2')] }, { matchFields: [name('a4')] }),
        ),
    ],
    [
      'several terms: each term keeps its expressions, only for the nodes of S it admits',
      pod({
        affinity: required(
          { matchExpressions: [expr('disk', 'In', 'ssd')] },
          { matchExpressions: [expr('zone', 'In', 'b')] },
        ),
      }),
      ['a1', 'a2', 'b1'],
      '3 of 5 eligible nodes',
      (after) =>
        t.same(
          after['spec'].affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms,
          [
            { matchExpressions: [expr('disk', 'In', 'ssd')], matchFields: [name('a1')] },
            { matchExpressions: [expr('disk', 'In', 'ssd')], matchFields: [name('a2')] },
            { matchExpressions: [expr('disk', 'In', 'ssd')], matchFields: [name('b1')] },
            { matchExpressions: [expr('zone', 'In', 'b')], matchFields: [name('b1')] },
          ],
        ),
    ],
    [
      'a term with matchFields already: kept, ours appended',
      pod({
        affinity: required({
          matchExpressions: [expr('zone', 'In', 'a')],
          matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['a4'] }],
        }),
      }),
      ['a1', 'a2'],
      '2 of 3 eligible nodes',
      (after) =>
        t.same(
          after['spec'].affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms[1],
          {
            matchExpressions: [expr('zone', 'In', 'a')],
            matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['a4'] }, name('a2')],
          },
        ),
    ],
    [
      'preferred affinity and pod affinity untouched',
      pod({
        nodeSelector: { zone: 'a' },
        affinity: {
          nodeAffinity: preferred,
          podAntiAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [
              { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: 'web' } } },
            ],
          },
        },
      }),
      ['a1', 'a2', 'a4'],
      '3 of 4 eligible nodes',
      (after) => {
        t.same(
          after['spec'].affinity?.nodeAffinity?.['preferredDuringSchedulingIgnoredDuringExecution'],
          preferred.preferredDuringSchedulingIgnoredDuringExecution,
        )
        t.match(after['spec'].affinity, {
          podAntiAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname' }],
          },
        })
      },
    ],
    [
      'several Never images: S holds them all',
      pod({ images: ['myapp:dev', 'busybox:1.36'], nodeSelector: { zone: 'a' } }),
      ['a1', 'a2', 'a3'],
      '3 of 4 eligible nodes',
      () => undefined,
    ],
    [
      'a Never image volume counts like a Never container',
      {
        ...pod({ images: ['busybox:1.36'], nodeSelector: { zone: 'a' } }),
        spec: {
          ...pod({ images: ['busybox:1.36'], nodeSelector: { zone: 'a' } })['spec'],
          volumes: [{ name: 'models', image: { reference: 'myapp:dev', pullPolicy: 'Never' } }],
        },
      },
      ['a1', 'a2', 'a3'],
      '3 of 4 eligible nodes',
      (after) => t.same(after['spec'].volumes?.[0]?.['image'], { reference: 'myapp:dev', pullPolicy: 'Never' }),
    ],
    [
      'a pod with annotations and null affinity',
      {
        ...pod({ nodeSelector: { zone: 'a' }, annotations: { team: 'x' } }),
        spec: { ...pod({ nodeSelector: { zone: 'a' } })['spec'], affinity: null },
      },
      ['a1', 'a2', 'a4'],
      '3 of 4 eligible nodes',
      (after) => t.equal(after['metadata'].annotations?.['team'], 'x'),
    ],
  ]
  for (const [what, before, nodes, note, check] of table) {
    const s = steer(before)
    t.equal(s.outcome, 'steered', `${what}: steered`)
    const after = apply(before, s.patch)
    t.ok(validAffinity(after['spec'].affinity), `${what}: valid affinity ${JSON.stringify(validAffinity.errors)}`)
    t.same(eligible(after), nodes, `${what}: lands only on S`)
    t.equal(after['metadata'].annotations?.['neverpull.dev/steered'], note, `${what}: annotation`)
    check(after)
    const again = steer(after)
    t.equal(again.outcome, 'unchanged', `${what}: a reinvocation changes nothing`)
    t.same(again.patch, [], `${what}: no patch on reinvocation`)
  }
})

t.test('reinvoked after another webhook changed the pod: recomputed from its own terms, never stacked', async (t) => {
  const original = pod({ affinity: required({ matchExpressions: [expr('zone', 'In', 'a')] }) })
  const first = apply(original, steer(original).patch)
  t.same(eligible(first), ['a1', 'a2', 'a4'])
  // A sidecar injector adds a Never container whose image only a1 has.
  const injected = jsonpatch.deepClone(first) as FixturePod
  injected['spec'].containers.push({ name: 'tool', image: 'tool:1', imagePullPolicy: 'Never' })
  const second = steer(injected)
  t.equal(second.outcome, 'resteered')
  const after = apply(injected, second.patch)
  t.same(after['spec'].affinity, required({ matchExpressions: [expr('zone', 'In', 'a')], matchFields: [name('a1')] }))
  t.equal(after['metadata'].annotations?.['neverpull.dev/steered'], '1 of 4 eligible nodes')
  t.same(steer(after).patch, [])

  // Now it also needs an image no node has: nothing to steer to, the pod's own terms come back.
  const hopeless = jsonpatch.deepClone(after) as FixturePod
  hopeless['spec'].containers.push({ name: 'ghost', image: 'ghost:1', imagePullPolicy: 'Never' })
  const third = steer(hopeless)
  t.equal(third.outcome, 'released')
  const released = apply(hopeless, third.patch)
  t.same(released['spec'].affinity, original['spec'].affinity)
  t.notOk('neverpull.dev/steered' in released['metadata'].annotations!)

  // A pod steered from no affinity at all gets no empty affinity back.
  const bare = pod({ nodeSelector: { zone: 'a' } })
  const steered = apply(bare, steer(bare).patch)
  steered['spec'].containers.push({ name: 'ghost', image: 'ghost:1', imagePullPolicy: 'Never' })
  const back = apply(steered, steer(steered).patch)
  t.same(back['spec'].affinity, { nodeAffinity: {} })
  t.same(eligible(back), ['a1', 'a2', 'a3', 'a4'])
})

t.test('pods left alone', async (t) => {
  const table: Array<[string, FixturePod, string, SteerPolicy?]> = [
    ['spec.nodeName', pod({ nodeName: 'a1' }), 'node-name'],
    [
      'a DaemonSet pod',
      pod({
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: 'u', controller: true }],
        affinity: required({ matchFields: [name('a3')] }),
      }),
      'daemonset',
    ],
    ['a mirror pod', pod({ annotations: { 'kubernetes.io/config.mirror': 'abc' } }), 'mirror'],
    ['no Never container', pod({ pullPolicy: 'IfNotPresent' }), 'no-never-images'],
    ['an eligible node without a current image list', pod({ nodeSelector: { zone: 'x' } }), 'unknown'],
    ['the image on no eligible node', pod({ images: ['myapp:dev'], nodeSelector: { zone: 'b' } }), 'nowhere'],
    ['the image on every eligible node', pod({ images: ['busybox:1.36'], nodeSelector: { zone: 'a' } }), 'everywhere'],
    ['no eligible node', pod({ nodeSelector: { zone: 'nope' } }), 'no-eligible-nodes'],
    ['an invalid reference', pod({ images: ['MyApp:1'] }), 'invalid-reference'],
    [
      'more nodes than --steer-max-nodes, no label picks them',
      pod({
        affinity: required(
          { matchExpressions: [expr('disk', 'In', 'ssd')] },
          { matchExpressions: [expr('zone', 'In', 'b')] },
        ),
      }),
      'too-many-nodes',
      { maxNodes: 2 },
    ],
  ]
  for (const [what, p, reason, policy] of table) {
    const s = steer(p, policy)
    t.equal(s.outcome, 'skipped', what)
    t.same(s.patch, [], `${what}: no patch`)
    t.equal(s.target.steer ? 'steer' : s.target.reason, reason, `${what}: reason`)
  }
})

t.test('past --steer-max-nodes, a node label the nodes of S share is used instead of their names', async (t) => {
  const before = pod({ affinity: required({ matchExpressions: [expr('zone', 'In', 'a')] }) })
  const s = steer(before, { maxNodes: 2 })
  t.equal(s.outcome, 'steered')
  const after = apply(before, s.patch)
  t.same(after['spec'].affinity, required({ matchExpressions: [expr('zone', 'In', 'a'), expr('pool', 'In', 'app')] }))
  t.ok(validAffinity(after['spec'].affinity))
  t.same(eligible(after), ['a1', 'a2', 'a4'])
  t.equal(after['metadata'].annotations?.['neverpull.dev/steered'], '3 of 4 eligible nodes (node label pool=app)')
  t.same(steer(after, { maxNodes: 2 }).patch, [], 'recognised on reinvocation')
  // Reinvoked with room for the names: the label requirement goes, the names come.
  const renamed = apply(after, steer(after).patch)
  t.same(
    renamed['spec'].affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms.length,
    3,
  )
  t.notMatch(JSON.stringify(renamed['spec'].affinity), /pool/)
  t.same(eligible(renamed), ['a1', 'a2', 'a4'])
})

t.test(
  'the captured pods, patched by a real JSONPatch implementation, are valid and land only where the image is',
  async (t) => {
    // node-a and node-b as in examples/, a third ssd node in zone a, and a gpu node.
    const view = buildIndex([
      { name: 'node-a', labels: { zone: 'a', disk: 'ssd' }, images: [DEV, BUSY] },
      { name: 'node-b', labels: { zone: 'b', disk: 'ssd' }, images: [BUSY] },
      { name: 'node-d', labels: { zone: 'a', disk: 'ssd' }, images: [BUSY] },
      {
        name: 'node-c',
        labels: { zone: 'a', disk: 'hdd' },
        taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }],
        images: [DEV, BUSY],
      },
    ])
    const expected: Record<string, { nodes: string[]; terms: Json[] }> = {
      'pod-create': {
        nodes: ['node-a'],
        terms: [{ matchExpressions: [expr('disk', 'In', 'ssd')], matchFields: [name('node-a')] }],
      },
      'pod-create-generatename': { nodes: ['node-a'], terms: [{ matchFields: [name('node-a')] }] },
      'pod-create-dryrun': { nodes: ['node-a'], terms: [{ matchFields: [name('node-a')] }] },
      'pod-create-review-v1beta1': { nodes: ['node-a'], terms: [{ matchFields: [name('node-a')] }] },
    }
    for (const [fixture, want] of Object.entries(expected)) {
      const object = review(fixture)['request'].object
      const s = steer(object, POLICY, view)
      t.equal(s.outcome, 'steered', fixture)
      const result = jsonpatch.applyPatch(
        jsonpatch.deepClone(object) as FixtureObject,
        s.patch as jsonpatch.Operation[],
        true,
      )
      const after = result.newDocument
      t.ok(validAffinity(after.spec.affinity), `${fixture}: valid affinity ${JSON.stringify(validAffinity.errors)}`)
      t.same(
        after.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms,
        want.terms,
        `${fixture}: terms`,
      )
      t.same(after.spec.nodeSelector, object.spec.nodeSelector, `${fixture}: nodeSelector untouched`)
      t.same(after.spec.tolerations, object.spec.tolerations, `${fixture}: tolerations untouched`)
      t.same(after.spec.containers, object.spec.containers, `${fixture}: containers untouched`)
      for (const [k, v] of Object.entries(object.metadata.annotations ?? {}))
        t.equal(after.metadata.annotations?.[k], v, `${fixture}: annotation ${k} kept`)
      t.match(after.metadata.annotations?.['neverpull.dev/steered'], /^1 of \d eligible nodes$/)
      const x = extractPodTemplate('Pod', after)
      if (!x.ok || x.template === null) throw new Error('patched pod does not parse')
      const bits = eligibleNodes(view, x.template.placement).nodes
      const names: string[] = []
      for (let slot = 0; slot < 32; slot++) if ((bits[0]! >>> slot) & 1) names.push(view.nameOf(slot))
      t.same(names, want.nodes, `${fixture}: eligible after`)
      t.same(steer(after, POLICY, view).patch, [], `${fixture}: idempotent`)
    }
  },
)

t.test('which namespaces steer', async (t) => {
  const view = buildIndex([])
  view.setNamespaceSteer('on', true)
  view.setNamespaceSteer('out', false)
  const table: Array<[string, boolean, 'enforce' | 'off', boolean]> = [
    ['on', false, 'enforce', true],
    ['on', false, 'off', false],
    ['out', true, 'enforce', false],
    ['plain', false, 'enforce', false],
    ['plain', true, 'enforce', true],
    ['plain', true, 'off', false],
  ]
  for (const [ns, global, mode, want] of table)
    t.equal(steeringFor(view, ns, global, mode), want, `${ns} global=${global} mode=${mode}`)
})

t.test('steering reads presence like the decision: a fresh NodeImageSet outranks Node.status.images', async (t) => {
  // s1's kubelet still lists myapp:1.0 in its status, but its fresh NodeImageSet says it is gone.
  const view = buildIndex([
    { name: 's1', labels: { zone: 's' }, images: [], statusImages: [APP] },
    { name: 's2', labels: { zone: 's' }, images: [APP], statusImages: [APP] },
  ])
  const s = steer(pod({ nodeSelector: { zone: 's' } }), POLICY, view)
  t.ok(s.target.steer, 'steered, not "everywhere"')
  t.same(s.target.steer ? s.target.names : [], ['s2'], 'only to the node whose runtime has it')
})
