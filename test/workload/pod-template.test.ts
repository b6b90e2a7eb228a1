import t from 'tap'
import { extractPodTemplate } from '../../src/workload/pod-template.js'
import { review, type FixtureObject, type FixturePodSpec } from '../helpers/fixtures.js'

function spec(kind: string, name: string, edit: (spec: FixturePodSpec) => void): FixtureObject {
  const object = review(name)['request'].object
  const at =
    kind === 'CronJob'
      ? object.spec.jobTemplate.spec.template.spec
      : kind === 'PodTemplate'
        ? object.template.spec
        : kind === 'Pod'
          ? object.spec
          : object.spec.template.spec
  edit(at)
  return object
}

// pkg/controller/daemon NodeShouldRunDaemonPod: a DaemonSet template's nodeName restricts the
// nodes to that one, and node affinity and taints are still checked there (predicates).
t.test('a DaemonSet template nodeName keeps the scheduling filters; a Pod nodeName bypasses them', async (t) => {
  const ds = extractPodTemplate(
    'DaemonSet',
    spec('DaemonSet', 'daemonset-create', (s) => (s.nodeName = 'node-c')),
  )
  t.ok(ds.ok && ds.template !== null)
  if (!ds.ok || ds.template === null) return
  t.equal(ds.template.placement.nodeName, 'node-c')
  t.equal(ds.template.placement.nodeNameFiltered, true)
  const pod = extractPodTemplate(
    'Pod',
    spec('Pod', 'pod-create', (s) => (s.nodeName = 'node-c')),
  )
  t.ok(
    pod.ok && pod.template !== null && pod.template.placement.nodeNameFiltered === undefined,
    'a bound Pod skips the scheduler',
  )
})

// KUBERNETES-FACTS §9 "Objects that run nothing": replicas is defaulted to 1 before webhooks
// run (pkg/apis/apps/v1 defaults.go), so only an explicit 0 counts; CronJobSpec.suspend and
// JobSpec.suspend (batch/v1) hold every pod back; a core PodTemplate runs nothing itself.
t.test('objects that create no pod now are marked idle', async (t) => {
  const idle = (kind: string, fixture: string, edit: (o: FixtureObject) => void): string | undefined => {
    const object = review(fixture)['request'].object
    edit(object)
    const r = extractPodTemplate(kind, object)
    return r.ok && r.template !== null ? (r.template.idle ?? 'running') : 'error'
  }
  const table: Array<[string, string, (o: FixtureObject) => void, string]> = [
    ['Deployment', 'deployment-create', (o) => (o.spec.replicas = 0), 'scaled-to-zero'],
    ['Deployment', 'deployment-create', (o) => (o.spec.replicas = 2), 'running'],
    ['Deployment', 'deployment-create', (o) => delete o.spec.replicas, 'running'],
    ['ReplicaSet', 'replicaset-create', (o) => (o.spec.replicas = 0), 'scaled-to-zero'],
    ['StatefulSet', 'statefulset-create', (o) => (o.spec.replicas = 0), 'scaled-to-zero'],
    ['ReplicationController', 'replicationcontroller-create', (o) => (o.spec.replicas = 0), 'scaled-to-zero'],
    ['CronJob', 'cronjob-v1beta1-create', (o) => (o.spec.suspend = true), 'suspended'],
    ['CronJob', 'cronjob-v1beta1-create', (o) => (o.spec.suspend = false), 'running'],
    ['Job', 'job-create', (o) => (o.spec.suspend = true), 'suspended'],
    ['Job', 'job-create', (o) => (o.spec.parallelism = 0), 'scaled-to-zero'],
    ['Job', 'job-create', () => undefined, 'running'],
    ['PodTemplate', 'podtemplate-create', () => undefined, 'template-only'],
    ['DaemonSet', 'daemonset-create', (o) => (o.spec.replicas = 0), 'running'],
    ['Pod', 'pod-create', () => undefined, 'running'],
  ]
  for (const [kind, fixture, edit, want] of table)
    t.equal(idle(kind, fixture, edit), want, `${kind} ${edit.toString()}`)
})

// Image volumes (ImageVolume: beta 1.33, on by default 1.35): spec.volumes[].image{reference,
// pullPolicy}; the kubelet pulls them by their pullPolicy, defaulted like a container's
// (pkg/apis/core/v1 defaults.go SetDefaults_ImageVolumeSource).
t.test('image volumes are checked like containers, on every kind that carries a pod spec', async (t) => {
  const volumes = [
    { name: 'models', image: { reference: 'models:v3', pullPolicy: 'Never' } },
    { name: 'scratch', emptyDir: {} },
    { name: 'data', image: { reference: 'data:1' } },
  ]
  for (const [kind, fixture] of [
    ['Pod', 'pod-create'],
    ['Deployment', 'deployment-create'],
    ['CronJob', 'cronjob-v1beta1-create'],
    ['PodTemplate', 'podtemplate-create'],
    ['DaemonSet', 'daemonset-create'],
  ] as const) {
    const r = extractPodTemplate(
      kind,
      spec(kind, fixture, (s) => (s.volumes = volumes)),
    )
    t.ok(r.ok && r.template !== null, kind)
    if (!r.ok || r.template === null) continue
    const vols = r.template.containers.filter((c) => c.kind === 'imageVolume')
    t.same(
      vols,
      [
        { kind: 'imageVolume', name: 'models', image: 'models:v3', pullPolicy: 'Never' },
        { kind: 'imageVolume', name: 'data', image: 'data:1', pullPolicy: '' },
      ],
      `${kind}: both image volumes, the policy as written`,
    )
  }
  const bad = extractPodTemplate(
    'Pod',
    spec('Pod', 'pod-create', (s) => (s.volumes = [{ name: 'm', image: 'models:v3' }])),
  )
  t.same(bad, { ok: false, error: 'spec.volumes[0].image must be an object' })
})

// The reader the RuntimeClass reader shares (api/scheduling.ts readToleration): each field
// absent, null or a string, in the order the placement reads them; a wrong type names it.
t.test('tolerations are read field by field; a wrong type is an error naming the field', async (t) => {
  const read = (tolerations: Array<Record<string, unknown>>) =>
    extractPodTemplate(
      'DaemonSet',
      spec('DaemonSet', 'daemonset-create', (s) => (s.tolerations = tolerations)),
    )
  const ok = read([
    { key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' },
    { operator: 'Exists', key: null },
  ])
  t.ok(ok.ok && ok.template !== null)
  if (!ok.ok || ok.template === null) return
  t.same(ok.template.placement.tolerations.slice(0, 2), [
    { key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' },
    { operator: 'Exists' },
  ])
  t.same(read([{ key: 'a' }, { effect: 1 }]), {
    ok: false,
    error: 'spec.template.spec.tolerations[1].effect must be a string',
  })
  t.same(read([['x']] as unknown as Array<Record<string, unknown>>), {
    ok: false,
    error: 'spec.template.spec.tolerations[0] must be an object',
  })
})
