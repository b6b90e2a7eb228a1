import t from 'tap'
import { extractPodTemplate } from '../../src/workload/pod-template.js'
import { review } from '../helpers/fixtures.js'

function spec(kind: string, name: string, edit: (spec: Record<string, any>) => void): Record<string, any> {
  const object = review(name)['request'].object
  const at = kind === 'CronJob' ? object.spec.jobTemplate.spec.template.spec : kind === 'PodTemplate' ? object.template.spec : kind === 'Pod' ? object.spec : object.spec.template.spec
  edit(at)
  return object
}

// pkg/controller/daemon NodeShouldRunDaemonPod: a DaemonSet template's nodeName restricts the
// nodes to that one, and node affinity and taints are still checked there (predicates).
t.test('a DaemonSet template nodeName keeps the scheduling filters; a Pod nodeName bypasses them', async (t) => {
  const ds = extractPodTemplate('DaemonSet', spec('DaemonSet', 'daemonset-create', (s) => (s.nodeName = 'node-c')))
  t.ok(ds.ok && ds.template !== null)
  if (!ds.ok || ds.template === null) return
  t.equal(ds.template.placement.nodeName, 'node-c')
  t.equal(ds.template.placement.nodeNameFiltered, true)
  const pod = extractPodTemplate('Pod', spec('Pod', 'pod-create', (s) => (s.nodeName = 'node-c')))
  t.ok(pod.ok && pod.template !== null && pod.template.placement.nodeNameFiltered === undefined, 'a bound Pod skips the scheduler')
})
