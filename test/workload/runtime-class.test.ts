import t from 'tap'
import type { Placement } from '../../src/api/scheduling.js'
import type { RuntimeClassFacts } from '../../src/api/types.js'
import { mergeRuntimeClass } from '../../src/workload/runtime-class.js'

// plugin/pkg/admission/runtimeclass/admission.go setScheduling: the RuntimeClass's
// scheduling.nodeSelector is merged into the pod's (a nil pod selector takes it whole; a key
// the pod has with another value is a conflict that rejects the pod), and its tolerations
// are merged into the pod's (pkg/util/tolerations MergeTolerations).
const gvisor: RuntimeClassFacts = {
  name: 'gvisor',
  handler: 'runsc',
  nodeSelector: { 'sandbox.gke.io/runtime': 'gvisor' },
  tolerations: [{ key: 'sandbox.gke.io/runtime', operator: 'Equal', value: 'gvisor', effect: 'NoSchedule' }],
}

t.test('setScheduling, case by case', async (t) => {
  const table: Array<[string, Placement, RuntimeClassFacts, Placement | string]> = [
    [
      'a pod without nodeSelector takes the RuntimeClass selector and tolerations',
      { tolerations: [] },
      gvisor,
      { nodeSelector: { 'sandbox.gke.io/runtime': 'gvisor' }, tolerations: gvisor.tolerations },
    ],
    [
      'selectors merge key by key',
      { nodeSelector: { zone: 'a' }, tolerations: [{ key: 'x', operator: 'Exists' }] },
      gvisor,
      {
        nodeSelector: { zone: 'a', 'sandbox.gke.io/runtime': 'gvisor' },
        tolerations: [{ key: 'x', operator: 'Exists' }, ...gvisor.tolerations],
      },
    ],
    [
      'the same key with the same value is no conflict, and a toleration the pod already has is not repeated',
      { nodeSelector: { 'sandbox.gke.io/runtime': 'gvisor' }, tolerations: [...gvisor.tolerations] },
      gvisor,
      { nodeSelector: { 'sandbox.gke.io/runtime': 'gvisor' }, tolerations: gvisor.tolerations },
    ],
    [
      "the same key with another value rejects the pod, in the plugin's words",
      { nodeSelector: { 'sandbox.gke.io/runtime': 'kata' }, tolerations: [] },
      gvisor,
      'conflict: runtimeClass.scheduling.nodeSelector[sandbox.gke.io/runtime] = gvisor; pod.spec.nodeSelector[sandbox.gke.io/runtime] = kata',
    ],
    [
      'a RuntimeClass without scheduling changes nothing',
      { nodeSelector: { zone: 'a' }, tolerations: [] },
      { name: 'runc', handler: 'runc', tolerations: [] },
      { nodeSelector: { zone: 'a' }, tolerations: [] },
    ],
    [
      'nodeName and affinity are left as they are',
      { nodeName: 'n1', requiredTerms: [{ matchExpressions: [{ key: 'k', operator: 'Exists' }] }], tolerations: [] },
      gvisor,
      {
        nodeName: 'n1',
        requiredTerms: [{ matchExpressions: [{ key: 'k', operator: 'Exists' }] }],
        nodeSelector: { 'sandbox.gke.io/runtime': 'gvisor' },
        tolerations: gvisor.tolerations,
      },
    ],
  ]
  for (const [name, placement, rc, want] of table) {
    const r = mergeRuntimeClass(placement, rc, false)
    if (typeof want === 'string') t.same(r, { ok: false, conflict: want }, name)
    else t.same(r, { ok: true, placement: want }, name)
  }
})

// pkg/controller/daemon NodeShouldRunDaemonPod decides from NewPod(ds, node), the template as
// written: the RuntimeClass's tolerations never add a node; its nodeSelector, merged into
// each daemon pod at creation, still leaves pods on other nodes Pending.
t.test('a DaemonSet: the selector merges, the tolerations do not add nodes', async (t) => {
  const r = mergeRuntimeClass({ tolerations: [] }, gvisor, true)
  t.same(r, { ok: true, placement: { nodeSelector: { 'sandbox.gke.io/runtime': 'gvisor' }, tolerations: [] } })
})

t.test('the input placement is never modified', async (t) => {
  const placement: Placement = { nodeSelector: { zone: 'a' }, tolerations: [] }
  mergeRuntimeClass(placement, gvisor, false)
  t.same(placement, { nodeSelector: { zone: 'a' }, tolerations: [] })
})
