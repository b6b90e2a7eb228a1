import t from 'tap'
import type { Placement } from '../../src/api/scheduling.js'
import { eligibleNodes, explainPlacement, FILTER_ORDER, schedulerSentence } from '../../src/placement/placement.js'
import { buildIndex } from '../helpers/inventory.js'

// Placement as the scheduler's filter stages, in its order, each node counted once under the
// first filter that rejects it, and the sentence `kubectl describe pod` shows when none fits.

const index = buildIndex([
  { name: 'gpu-1', labels: { zone: 'a' }, taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }] },
  // Cordoned and tainted: NodeUnschedulable runs first, so it counts there only.
  {
    name: 'cordoned',
    labels: { zone: 'a' },
    unschedulable: true,
    taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }],
  },
  { name: 'b-1', labels: { zone: 'b' } },
  { name: 'b-2', labels: { zone: 'b' }, taints: [{ key: 'soft', effect: 'PreferNoSchedule' }] },
  // Two untolerated taints: the first in the node's order is named.
  {
    name: 'maint',
    labels: { zone: 'a' },
    taints: [
      { key: 'maintenance', effect: 'NoExecute' },
      { key: 'dedicated', value: 'gpu', effect: 'NoSchedule' },
    ],
  },
])

const place = (p: Partial<Placement>): Placement => ({ tolerations: [], ...p })

t.test("the filters in the scheduler's order (default_plugins.go)", (t) => {
  t.strictSame(FILTER_ORDER, ['NodeUnschedulable', 'NodeName', 'TaintToleration', 'NodeAffinity'])
  t.end()
})

t.test('each node counts once, under the first filter that rejects it', (t) => {
  const report = explainPlacement(index, place({ nodeSelector: { zone: 'a' } }))
  t.equal(report.total, 5)
  t.equal(report.eligible, 0)
  t.strictSame(
    report.filters.map((f) => [f.filter, f.removed, Object.fromEntries(f.reasons)]),
    [
      ['NodeUnschedulable', 1, { 'node(s) were unschedulable': 1 }],
      ['NodeName', 0, {}],
      [
        'TaintToleration',
        2,
        { 'node(s) had untolerated taint {dedicated: gpu}': 1, 'node(s) had untolerated taint {maintenance: }': 1 },
      ],
      ['NodeAffinity', 2, { "node(s) didn't match Pod's node affinity/selector": 2 }],
    ],
  )
  t.equal(
    schedulerSentence(report),
    '0/5 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) had untolerated taint {maintenance: }, ' +
      "1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector.",
    'entries sorted as strings, as FitError.Error sorts them',
  )
  t.end()
})

t.test('the sentence comes with an empty eligibility, and only then', (t) => {
  const none = eligibleNodes(index, place({ nodeSelector: { zone: 'z' } }))
  t.equal(none.count, 0)
  t.match(none.scheduler, /^0\/5 nodes are available: .*2 node\(s\) didn't match Pod's node affinity\/selector\.$/)
  const some = eligibleNodes(index, place({ nodeSelector: { zone: 'b' } }))
  t.equal(some.count, 2)
  t.equal(some.scheduler, undefined)
  const report = explainPlacement(index, place({ nodeSelector: { zone: 'b' } }))
  t.equal(report.eligible, 2, 'PreferNoSchedule never filters')
  t.equal(
    schedulerSentence(report),
    '2/5 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) had untolerated taint {maintenance: }, 1 node(s) were unschedulable.',
  )
  t.end()
})

t.test("tolerations move nodes out of their filter's count", (t) => {
  const report = explainPlacement(
    index,
    place({
      nodeSelector: { zone: 'c' },
      tolerations: [
        { key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' },
        { key: 'dedicated', operator: 'Exists' },
      ],
    }),
  )
  t.equal(
    schedulerSentence(report),
    "0/5 nodes are available: 1 node(s) had untolerated taint {maintenance: }, 4 node(s) didn't match Pod's node affinity/selector.",
  )
  t.end()
})

t.test("a DaemonSet template's nodeName is the NodeName filter; a bound pod skips them all", (t) => {
  const ds = eligibleNodes(index, place({ nodeName: 'gpu-1', nodeNameFiltered: true }))
  t.equal(ds.count, 0)
  t.equal(
    ds.scheduler,
    "0/5 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable, 3 node(s) didn't match the requested node name.",
  )
  const bound = eligibleNodes(index, place({ nodeName: 'gpu-1' }))
  t.equal(bound.count, 1)
  t.equal(bound.scheduler, undefined)
  t.end()
})

t.test("an empty inventory: the scheduler's own words for no nodes", (t) => {
  const empty = buildIndex([])
  t.equal(eligibleNodes(empty, place({})).scheduler, 'no nodes available to schedule pods')
  t.end()
})
