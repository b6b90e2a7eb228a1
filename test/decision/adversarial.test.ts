import t, { type Test } from 'tap'
import { checkPodReview } from '../../src/admission/pod-check.js'
import { parsePullableRegistries } from '../../src/api/registries.js'
import { buildIndex, digestOf, NOW, STALE_MS } from '../helpers/inventory.js'

// Adversarial review: cluster shapes operators run, each checked against what the kubelet,
// the runtime, the scheduler and the controllers really do. Each case names the upstream
// file and function that defines the behaviour. False denials first.

const APP = 'docker.io/library/myapp:1.0'
const CP_TAINT = { key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' as const }
const inventory = buildIndex([
  {
    name: 'w1',
    labels: { pool: 'web', 'kubernetes.io/os': 'linux' },
    images: [APP, 'registry.corp:5000/team/api:2', 'localhost:5000/tool:1'],
  },
  { name: 'w2', labels: { pool: 'web', 'kubernetes.io/os': 'linux' }, images: [APP] },
  { name: 'cp1', labels: { 'node-role.kubernetes.io/control-plane': '' }, taints: [CP_TAINT], images: [] },
  {
    name: 's1',
    labels: { sandbox: 'true' },
    taints: [{ key: 'sandbox', value: 'gvisor', effect: 'NoSchedule' }],
    images: ['docker.io/library/sandboxed:1'],
  },
  // A Windows node: no agent runs there, so no NodeImageSet, only the kubelet's status.images.
  {
    name: 'win1',
    labels: { 'kubernetes.io/os': 'windows', pool: 'win' },
    statusImages: ['mcr.microsoft.com/windows/servercore:ltsc2022'],
  },
  {
    name: 'notready1',
    labels: { pool: 'new' },
    taints: [{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }],
    images: [],
  },
  { name: 'v6', labels: { pool: 'v6' }, images: ['[fd00::1]:5000/app:1', 'Registry.Example.com/team/app:1'] },
  { name: 'old1', labels: { pool: 'old' }, images: [], age: STALE_MS * 2 },
])
inventory.upsertRuntimeClass({
  name: 'gvisor',
  handler: 'runsc',
  nodeSelector: { sandbox: 'true' },
  tolerations: [{ key: 'sandbox', operator: 'Equal', value: 'gvisor', effect: 'NoSchedule' }],
})
inventory.setRuntimeClassesComplete(true)
inventory.setNamespaceMode('warned', 'warn')
inventory.setNamespaceMode('audited', 'audit')
inventory.setNamespaceMode('offns', 'off')
// As the Namespace watch leaves it: every namespace listed is seen, and the list is complete.
for (const ns of ['default', 'warned', 'audited', 'offns']) inventory.setNamespaceSeen(ns, true)
inventory.setNamespacesComplete(true)

type Json = Record<string, unknown>
const GROUPS: Record<string, [string, string]> = {
  Pod: ['', 'pods'],
  Deployment: ['apps', 'deployments'],
  StatefulSet: ['apps', 'statefulsets'],
  DaemonSet: ['apps', 'daemonsets'],
  ReplicaSet: ['apps', 'replicasets'],
  Job: ['batch', 'jobs'],
  CronJob: ['batch', 'cronjobs'],
  PodTemplate: ['', 'podtemplates'],
}

interface ReviewOptions {
  operation?: 'CREATE' | 'UPDATE'
  oldObject?: Json
  subResource?: string
  namespace?: string
  version?: string
}

function review(kind: string, object: Json, o: ReviewOptions = {}): Json {
  const [group, resource] = GROUPS[kind]!
  const version = o.version ?? 'v1'
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'u-1',
      kind: { group, version, kind },
      resource: { group, version, resource },
      ...(o.subResource === undefined ? {} : { subResource: o.subResource }),
      name: 'x',
      namespace: o.namespace ?? 'default',
      operation: o.operation ?? 'CREATE',
      userInfo: { username: 'me' },
      object,
      ...(o.oldObject === undefined ? {} : { oldObject: o.oldObject }),
    },
  }
}

const c = (image: string, name = 'app', pullPolicy = 'Never'): Json => ({ name, image, imagePullPolicy: pullPolicy })
const podSpec = (containers: Json[], extra: Json = {}): Json => ({ containers, ...extra })
const pod = (spec: Json, metadata: Json = {}): Json => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'x', ...metadata },
  spec,
})
const workload = (kind: string, spec: Json, extra: Json = {}): Json => {
  const body: Json =
    kind === 'CronJob' ? { jobTemplate: { spec: { template: { spec } } }, ...extra } : { template: { spec }, ...extra }
  return { kind, metadata: { name: 'x' }, spec: body }
}

interface Verdict {
  allowed: boolean
  warned: boolean
  text: string
}

function verdict(body: Json, pullable?: string): Verdict {
  const p = pullable === undefined ? undefined : parsePullableRegistries(pullable)
  if (p !== undefined && !p.ok) throw new Error(p.error)
  const { reply } = checkPodReview(body, {
    inventory,
    mode: 'enforce',
    now: NOW,
    ...(p === undefined ? {} : { pullable: p.value }),
  })
  const warnings = reply.response.warnings ?? []
  return {
    allowed: reply.response.allowed,
    warned: warnings.length > 0,
    text: [reply.response.status?.message ?? '', ...warnings].join('\n'),
  }
}

type Expect = 'allow' | 'warn' | 'deny'
const outcome = (v: Verdict): Expect => (!v.allowed ? 'deny' : v.warned ? 'warn' : 'allow')

interface Case {
  name: string
  /** Upstream file and function that defines the behaviour. */
  upstream: string
  body: Json
  want: Expect
  pullable?: string
  match?: RegExp
}

function table(t: Test, cases: Case[]): void {
  for (const k of cases) {
    const v = verdict(k.body, k.pullable)
    t.equal(outcome(v), k.want, `${k.name} [${k.upstream}]\n${v.text}`)
    if (k.match !== undefined) t.match(v.text, k.match, `${k.name}: message`)
  }
}

const web = { nodeSelector: { pool: 'web' } }

t.test('false denials: objects and updates that create no failing pod', (t) => {
  table(t, [
    {
      name: 'Job with completions: 0 creates no pod and completes at once',
      upstream: 'pkg/controller/job/job_controller.go manageJob: wantActive = *Completions - succeeded (0)',
      body: review(
        'Job',
        workload('Job', podSpec([c('myapp:9')], { ...web, restartPolicy: 'Never' }), { completions: 0 }),
      ),
      want: 'warn',
    },
    {
      name: 'Deployment created paused: the controller makes no ReplicaSet until resumed',
      upstream:
        'pkg/controller/deployment/deployment_controller.go syncDeployment: Paused -> sync(createIfNotExisted=false)',
      body: review('Deployment', workload('Deployment', podSpec([c('myapp:9')], web), { replicas: 2, paused: true })),
      want: 'warn',
      match: /paused/,
    },
    {
      name: 'kubectl set image on a paused Deployment: nothing rolls until kubectl rollout resume',
      upstream: 'pkg/controller/deployment/sync.go sync -> getAllReplicaSetsAndSyncRevision(..., false)',
      body: review('Deployment', workload('Deployment', podSpec([c('myapp:9')], web), { replicas: 2, paused: true }), {
        operation: 'UPDATE',
        oldObject: workload('Deployment', podSpec([c('myapp:1.0')], web), { replicas: 2, paused: true }),
      }),
      want: 'warn',
    },
    {
      name: 'kubectl rollout resume of an unchanged template: no image was just changed',
      upstream:
        'pkg/controller/deployment/deployment_controller.go syncDeployment (the template of the running ReplicaSet)',
      body: review('Deployment', workload('Deployment', podSpec([c('myapp:9')], web), { replicas: 2 }), {
        operation: 'UPDATE',
        oldObject: workload('Deployment', podSpec([c('myapp:9')], web), { replicas: 2, paused: true }),
      }),
      want: 'warn',
    },
    {
      name: 'DaemonSet with updateStrategy OnDelete gets a new image: no pod is replaced until deleted',
      upstream:
        'pkg/controller/daemon update.go rollingUpdate runs only for RollingUpdate (OnDelete: dsc.syncNodes creates on new nodes only)',
      body: review(
        'DaemonSet',
        workload('DaemonSet', podSpec([c('myapp:9')], web), { updateStrategy: { type: 'OnDelete' } }),
        {
          operation: 'UPDATE',
          oldObject: workload('DaemonSet', podSpec([c('myapp:1.0')], web), { updateStrategy: { type: 'OnDelete' } }),
        },
      ),
      want: 'warn',
      match: /OnDelete/,
    },
    {
      name: 'the same DaemonSet created with OnDelete runs pods at once: denied',
      upstream: 'pkg/controller/daemon daemon_controller.go manage -> syncNodes',
      body: review(
        'DaemonSet',
        workload('DaemonSet', podSpec([c('myapp:9')], web), { updateStrategy: { type: 'OnDelete' } }),
      ),
      want: 'deny',
    },
    {
      name: 'StatefulSet canary: partition at replicas, a new image replaces no pod',
      upstream: 'pkg/controller/statefulset stateful_set_control.go updateStatefulSet (ordinals >= partition only)',
      body: review(
        'StatefulSet',
        workload('StatefulSet', podSpec([c('myapp:9')], web), {
          replicas: 3,
          updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 3 } },
        }),
        {
          operation: 'UPDATE',
          oldObject: workload('StatefulSet', podSpec([c('myapp:1.0')], web), {
            replicas: 3,
            updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 3 } },
          }),
        },
      ),
      want: 'warn',
    },
    {
      name: 'StatefulSet with partition 2 of 3 replaces ordinal 2 now: denied',
      upstream: 'pkg/controller/statefulset stateful_set_control.go updateStatefulSet',
      body: review(
        'StatefulSet',
        workload('StatefulSet', podSpec([c('myapp:9')], web), {
          replicas: 3,
          updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 2 } },
        }),
        {
          operation: 'UPDATE',
          oldObject: workload('StatefulSet', podSpec([c('myapp:1.0')], web), {
            replicas: 3,
            updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 2 } },
          }),
        },
      ),
      want: 'deny',
    },
    {
      name: 'UPDATE that changes only replicas (kubectl apply with a new count)',
      upstream: 'decide: only changed containers deny; the scale subresource is not seen at all (facts §8)',
      body: review('Deployment', workload('Deployment', podSpec([c('myapp:9')], web), { replicas: 5 }), {
        operation: 'UPDATE',
        oldObject: workload('Deployment', podSpec([c('myapp:9')], web), { replicas: 3 }),
      }),
      want: 'warn',
    },
    {
      name: 'StatefulSet with volumeClaimTemplates scaled to zero',
      upstream: 'pkg/controller/statefulset stateful_set_control.go: replicas 0 creates no pod',
      body: review(
        'StatefulSet',
        workload('StatefulSet', podSpec([c('myapp:9')], web), {
          replicas: 0,
          serviceName: 'db',
          volumeClaimTemplates: [
            {
              metadata: { name: 'data' },
              spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
            },
          ],
        }),
      ),
      want: 'warn',
    },
    {
      name: 'suspended CronJob served as batch/v1beta1 (1.19/1.20)',
      upstream: 'pkg/controller/cronjob cronjob_controller.go syncOne: Suspend -> no Job',
      body: review(
        'CronJob',
        workload('CronJob', podSpec([c('myapp:9')], web), { schedule: '* * * * *', suspend: true }),
        { version: 'v1beta1' },
      ),
      want: 'warn',
    },
    {
      name: "pods/ephemeralcontainers UPDATE: the pod's own containers did not change, only warn for them",
      upstream: 'pkg/registry/core/pod/storage EphemeralContainersREST (a whole Pod, already bound)',
      body: review(
        'Pod',
        pod(
          podSpec([c('myapp:9')], {
            nodeName: 'w1',
            ephemeralContainers: [c('busybox:1.36', 'debug', 'IfNotPresent')],
          }),
        ),
        {
          operation: 'UPDATE',
          subResource: 'ephemeralcontainers',
          oldObject: pod(podSpec([c('myapp:9')], { nodeName: 'w1' })),
        },
      ),
      want: 'warn',
    },
    {
      name: 'pod bound by nodeName to a node the inventory does not know yet',
      upstream: 'pkg/kubelet/images/image_manager.go EnsureImageExists runs on that node; we cannot see it',
      body: review('Pod', pod(podSpec([c('myapp:9')], { nodeName: 'brand-new' }))),
      want: 'warn',
    },
    {
      name: 'DaemonSet pod pinned by matchFields to a node the inventory does not know yet',
      upstream: 'pkg/controller/daemon/util ReplaceDaemonSetPodNodeNameNodeAffinity',
      body: review(
        'Pod',
        pod(
          podSpec([c('myapp:9')], {
            affinity: {
              nodeAffinity: {
                requiredDuringSchedulingIgnoredDuringExecution: {
                  nodeSelectorTerms: [
                    { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['brand-new'] }] },
                  ],
                },
              },
            },
          }),
        ),
      ),
      want: 'warn',
    },
    {
      name: 'pod without placement: the Windows node has no NodeImageSet, so absence there proves nothing',
      upstream: 'facts §6: status.images absence proves nothing (nodeStatusMaxImages)',
      body: review('Pod', pod(podSpec([c('myapp:1.0')], { nodeSelector: { 'kubernetes.io/os': 'windows' } }))),
      want: 'warn',
    },
    {
      name: 'a node whose NodeImageSet went stale: unknown, never missing',
      upstream: 'BRIEF truth standard: unknown is a warning',
      body: review('Pod', pod(podSpec([c('myapp:9')], { nodeSelector: { pool: 'old' } }))),
      want: 'warn',
    },
    {
      name: 'DaemonSet: a new node still carrying node.kubernetes.io/not-ready:NoSchedule gets no daemon pod',
      upstream:
        'pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations (not-ready only NoExecute); daemon_controller.go predicates',
      body: review('DaemonSet', workload('DaemonSet', podSpec([c('myapp:1.0')], { nodeSelector: { pool: 'new' } }))),
      want: 'warn',
    },
    {
      name: 'DaemonSet without a control-plane toleration: cp1 is not eligible, the image is on every worker',
      upstream:
        'pkg/controller/daemon daemon_controller.go NodeShouldRunDaemonPod -> predicates (FindMatchingUntoleratedTaint)',
      body: review(
        'DaemonSet',
        workload('DaemonSet', podSpec([c('myapp:1.0')], { nodeSelector: { 'kubernetes.io/os': 'linux' } })),
      ),
      want: 'allow',
    },
    {
      name: 'Deployment with runtimeClassName gvisor: the RuntimeClass selects and tolerates the sandbox nodes',
      upstream: 'plugin/pkg/admission/runtimeclass/admission.go setScheduling',
      body: review(
        'Deployment',
        workload('Deployment', podSpec([c('sandboxed:1')], { runtimeClassName: 'gvisor' }), { replicas: 2 }),
      ),
      want: 'allow',
    },
    {
      name: 'DaemonSet with runtimeClassName gvisor: the controller picks nodes from the unmerged template, their pods stay Pending',
      upstream:
        'pkg/controller/daemon NodeShouldRunDaemonPod (NewPod, no RuntimeClass merge) + admission.go setScheduling',
      body: review('DaemonSet', workload('DaemonSet', podSpec([c('sandboxed:1')], { runtimeClassName: 'gvisor' }))),
      want: 'warn',
    },
    {
      name: 'template container without an image (filled in by other admission)',
      upstream: 'pkg/apis/core/validation validateContainersOnlyForPod (image required on Pods only)',
      body: review('Deployment', workload('Deployment', podSpec([{ name: 'app', imagePullPolicy: 'Never' }], web))),
      want: 'allow',
    },
    {
      name: 'template image volume without a reference (filled in later)',
      upstream: 'k8s.io/api core/v1 ImageVolumeSource.Reference: optional for workload templates',
      body: review(
        'Deployment',
        workload(
          'Deployment',
          podSpec([c('myapp:1.0')], { ...web, volumes: [{ name: 'v', image: { pullPolicy: 'Never' } }] }),
        ),
      ),
      want: 'allow',
    },
    {
      name: 'namespace in warn mode: a denial becomes a warning',
      upstream: 'neverpull.dev/mode label',
      body: review('Pod', pod(podSpec([c('myapp:9')], web)), { namespace: 'warned' }),
      want: 'warn',
    },
    {
      name: 'namespace in audit mode: allowed silently',
      upstream: 'neverpull.dev/mode label',
      body: review('Pod', pod(podSpec([c('myapp:9')], web)), { namespace: 'audited' }),
      want: 'allow',
    },
    {
      name: 'namespace off: not checked',
      upstream: 'neverpull.dev/mode label',
      body: review('Pod', pod(podSpec([c('myapp:9')], web)), { namespace: 'offns' }),
      want: 'allow',
    },
    {
      name: 'default pullable *: an IfNotPresent image nobody has is not our business',
      upstream: 'issue 14 §3: the default * changes nothing',
      body: review('Pod', pod(podSpec([c('nowhere.example/app:1', 'app', 'IfNotPresent')], web))),
      want: 'allow',
    },
    {
      name: 'static pod mirror whose image is missing: the kubelet already runs or fails it',
      upstream: 'pkg/kubelet/pod/mirror_client.go CreateMirrorPod (kubernetes.io/config.mirror)',
      body: review(
        'Pod',
        pod(podSpec([c('myapp:9')], { nodeName: 'w1' }), { annotations: { 'kubernetes.io/config.mirror': 'abc' } }),
      ),
      want: 'warn',
    },
  ])
  t.end()
})

t.test('references the kubelet and containerd accept, found where they are', (t) => {
  const digest = digestOf(`manifest:${APP}`)
  table(t, [
    {
      name: 'tag and digest: the digest decides (the tag is dropped)',
      upstream: 'distribution/reference ParseDockerRef; containerd internal/cri LocalResolve',
      body: review('Pod', pod(podSpec([c(`myapp:whatever@${digest}`)], web))),
      want: 'allow',
    },
    {
      name: 'localhost:5000 registry',
      upstream: 'distribution/reference normalize.go splitDockerDomain (a ":" makes a domain)',
      body: review('Pod', pod(podSpec([c('localhost:5000/tool:1')], { nodeName: 'w1' }))),
      want: 'allow',
    },
    {
      name: 'IPv6 registry',
      upstream: 'distribution/reference regexp.go ipv6address',
      body: review('Pod', pod(podSpec([c('[fd00::1]:5000/app:1')], { nodeSelector: { pool: 'v6' } }))),
      want: 'allow',
    },
    {
      name: 'uppercase registry host is a valid domain (kept as written, as containerd keeps it)',
      upstream: 'distribution/reference regexp.go domainNameComponent [a-zA-Z0-9]',
      body: review('Pod', pod(podSpec([c('Registry.Example.com/team/app:1')], { nodeSelector: { pool: 'v6' } }))),
      want: 'allow',
    },
    {
      name: 'uppercase registry host against an IfNotPresent pullable list in lowercase',
      upstream: 'registry hosts are DNS names: case-insensitive',
      body: review(
        'Pod',
        pod(podSpec([c('REGISTRY.CORP:5000/team/api:2', 'api', 'IfNotPresent')], { nodeName: 'w1' })),
      ),
      pullable: 'registry.corp:5000',
      want: 'allow',
    },
  ])
  t.end()
})

t.test('false allows: what the kubelet will fail', (t) => {
  table(t, [
    {
      name: 'a sidecar (init container with restartPolicy: Always) whose image is missing',
      upstream:
        'pkg/kubelet/kuberuntime kuberuntime_container.go startContainer -> EnsureImageExists for init containers too',
      body: review(
        'Deployment',
        workload(
          'Deployment',
          podSpec([c('myapp:1.0')], {
            ...web,
            initContainers: [{ ...c('proxy:9', 'proxy'), restartPolicy: 'Always' }],
          }),
        ),
      ),
      want: 'deny',
      match: /init container "proxy"/,
    },
    {
      name: 'a new ephemeral container with Never on a node that lacks its image',
      upstream: 'pkg/kubelet/kuberuntime startContainer for ephemeral containers (EnsureImageExists)',
      body: review(
        'Pod',
        pod(podSpec([c('myapp:1.0')], { nodeName: 'w2', ephemeralContainers: [c('debugger:1', 'debug')] })),
        {
          operation: 'UPDATE',
          subResource: 'ephemeralcontainers',
          oldObject: pod(podSpec([c('myapp:1.0')], { nodeName: 'w2' })),
        },
      ),
      want: 'deny',
      match: /debugger:1/,
    },
    {
      name: 'Job with completions whose image is nowhere',
      upstream: 'pkg/controller/job manageJob creates pods; kubelet ErrImageNeverPull',
      body: review(
        'Job',
        workload('Job', podSpec([c('myapp:9')], { ...web, restartPolicy: 'Never' }), {
          completions: 3,
          parallelism: 1,
        }),
      ),
      want: 'deny',
    },
    {
      name: 'DaemonSet tolerating the control-plane taint: cp1 is eligible and lacks the image',
      upstream: 'pkg/controller/daemon daemon_controller.go predicates; component-helpers nodeaffinity',
      body: review(
        'DaemonSet',
        workload(
          'DaemonSet',
          podSpec([c('myapp:1.0')], {
            tolerations: [{ key: CP_TAINT.key, operator: 'Exists', effect: 'NoSchedule' }],
            nodeSelector: {},
          }),
        ),
      ),
      want: 'deny',
      match: /cp1/,
    },
    {
      name: 'image volume with pullPolicy: Never missing on the bound node',
      upstream: 'pkg/kubelet/kuberuntime kuberuntime_manager.go (image volumes pulled by EnsureImageExists)',
      body: review(
        'Pod',
        pod(
          podSpec([c('myapp:1.0')], {
            nodeName: 'w2',
            volumes: [{ name: 'models', image: { reference: 'models:1', pullPolicy: 'Never' } }],
          }),
        ),
      ),
      want: 'deny',
      match: /models/,
    },
    {
      name: 'Always from a registry outside the pullable list, even though present',
      upstream: 'pkg/kubelet/images/image_manager.go shouldPullImage (PullAlways pulls every start)',
      body: review('Pod', pod(podSpec([c('registry.corp:5000/team/api:2', 'api', 'Always')], { nodeName: 'w1' }))),
      pullable: 'localhost:5000',
      want: 'deny',
    },
  ])
  t.end()
})

t.test('node affinity values the apiserver accepts but the scheduler cannot parse', (t) => {
  const affinity = (operator: string, values: string[]): Json => ({
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator, values }] }],
        },
      },
    },
  })
  const upstream =
    'apimachinery labels.NewRequirement (validateLabelValue) -> component-helpers nodeaffinity newNodeSelectorTerm parseErrs: the term matches nothing'
  table(t, [
    {
      name: 'NotIn with a value that is no label value (a/b)',
      upstream,
      body: review('Pod', pod(podSpec([c('myapp:9')], affinity('NotIn', ['a/b'])))),
      want: 'warn',
      match: /no node matches the nodeSelector/,
    },
    {
      name: 'In with one valid and one over-long value',
      upstream,
      body: review('Pod', pod(podSpec([c('myapp:9')], affinity('In', ['web', 'x'.repeat(64)])))),
      want: 'warn',
    },
    {
      name: 'Gt -1: an int64, but not a label value',
      upstream,
      body: review('Pod', pod(podSpec([c('myapp:9')], affinity('Gt', ['-1'])))),
      want: 'warn',
    },
    {
      name: 'In with valid values still places and denies',
      upstream,
      body: review('Pod', pod(podSpec([c('myapp:9')], affinity('In', ['web'])))),
      want: 'deny',
    },
  ])
  t.end()
})

t.test('taints and cordons as the scheduler and the DaemonSet controller read them', (t) => {
  const taints = buildIndex([
    { name: 'cordoned', labels: { pool: 'p' }, unschedulable: true, images: [] },
    { name: 'prefer', labels: { pool: 'p' }, taints: [{ key: 'soft', effect: 'PreferNoSchedule' }], images: [APP] },
    { name: 'exec', labels: { pool: 'q' }, taints: [{ key: 'evict', value: 'now', effect: 'NoExecute' }], images: [] },
  ])
  const run = (body: Json): Expect => {
    const { reply } = checkPodReview(body, { inventory: taints, mode: 'enforce', now: NOW })
    return !reply.response.allowed ? 'deny' : (reply.response.warnings ?? []).length > 0 ? 'warn' : 'allow'
  }
  const cases: Array<[string, string, Json, Expect]> = [
    [
      'a cordoned node takes no new pod: the image is on every node that does',
      'pkg/scheduler/framework/plugins/nodeunschedulable Filter; PreferNoSchedule never filters (tainttoleration Filter)',
      review('Pod', pod(podSpec([c('myapp:1.0')], { nodeSelector: { pool: 'p' } }))),
      'allow',
    ],
    [
      'a DaemonSet tolerates node.kubernetes.io/unschedulable: the cordoned node lacks the image',
      'pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations',
      review('DaemonSet', workload('DaemonSet', podSpec([c('myapp:1.0')], { nodeSelector: { pool: 'p' } }))),
      'deny',
    ],
    [
      'a toleration with operator Exists and no key tolerates every taint, the cordon too',
      'k8s.io/api core/v1 toleration.go ToleratesTaint (empty key + Exists)',
      review(
        'Pod',
        pod(podSpec([c('myapp:9')], { nodeSelector: { pool: 'q' }, tolerations: [{ operator: 'Exists' }] })),
      ),
      'deny',
    ],
    [
      'an untolerated NoExecute taint filters like NoSchedule: no eligible node, only a warning',
      'pkg/scheduler/framework/plugins/tainttoleration Filter (NoSchedule and NoExecute)',
      review('Pod', pod(podSpec([c('myapp:9')], { nodeSelector: { pool: 'q' } }))),
      'warn',
    ],
  ]
  for (const [name, upstream, body, want] of cases) t.equal(run(body), want, `${name} [${upstream}]`)
  t.end()
})

// Open problems found in review, left for their owners; each fails today.
t.test('open problems', (t) => {
  t.todo(
    'pods/ephemeralcontainers on 1.16-1.22 arrive as kind EphemeralContainers (pkg/registry/core/pod/storage ' +
      'EphemeralContainersREST before 1.23): not checked at all, a false allow; the object carries only the list, ' +
      'the node must come from the pod (nodeName) the inventory does not hold',
    (t) => {
      const body = review(
        'Pod',
        { kind: 'EphemeralContainers', metadata: { name: 'x' }, ephemeralContainers: [c('debugger:1', 'debug')] },
        {
          operation: 'UPDATE',
          subResource: 'ephemeralcontainers',
        },
      )
      ;(body['request'] as Json)['kind'] = { group: '', version: 'v1', kind: 'EphemeralContainers' }
      t.equal(outcome(verdict(body)), 'warn', 'at least a warning that the debug image cannot be checked')
      t.end()
    },
  )
  t.todo(
    'KubeletEnsureSecretPulledImages (beta, on by default 1.35, KEP-2535): an image the kubelet pulled with ' +
      'credentials is refused to a Never pod lacking them though present; the agent cannot see the kubelet pull ' +
      'records (/var/lib/kubelet/image_manager), so such pods are allowed (false allow)',
    (t) => {
      t.fail('not modelled: needs the kubelet pull records')
      t.end()
    },
  )
  t.todo(
    'pullable registries on CRI-O nodes: registryOf normalises a short name to docker.io, but CRI-O pulls myapp:1 ' +
      'from its unqualified-search-registries (cri-o internal/storage/image.go CandidatesForPotentiallyShortImageName), ' +
      'so the registry judged is not the one pulled from',
    (t) => {
      t.fail('not modelled: registryOf ignores the node runtime')
      t.end()
    },
  )
  t.end()
})

t.test('a namespace newer than the inventory: its mode label is unknown, so enforce only warns', (t) => {
  // Namespace and Deployment in one kubectl apply: the Deployment's review can arrive before
  // the Namespace watch event, and the namespace may say neverpull.dev/mode=warn or off.
  // Denying would be a denial on missing data.
  const fresh = review('Deployment', workload('Deployment', podSpec([c('myapp:9')], web)), {
    namespace: 'just-created',
  })
  const v = verdict(fresh)
  t.equal(outcome(v), 'warn')
  const lines = v.text.split('\n')
  t.equal(
    lines[1],
    `namespace "just-created" is newer than neverpull-guard's list of namespaces, so its neverpull.dev/mode label is not known yet: it warns instead of denying`,
    'the first warning says why this is not a denial',
  )
  t.ok(
    lines.some((w) => w.includes('myapp:9')),
    'the image is still named',
  )
  // With the global mode warn there was no denial to hold back: no such line.
  const warned = checkPodReview(fresh, { inventory, mode: 'warn', now: NOW }).reply.response
  t.equal(warned.allowed, true)
  t.notOk(
    (warned.warnings ?? []).some((w) => w.includes('newer than')),
    'no namespace line when nothing was held back',
  )
  // The same object in a namespace the inventory has seen (unlabelled: the global enforce applies) is denied.
  t.equal(outcome(verdict(review('Deployment', workload('Deployment', podSpec([c('myapp:9')], web))))), 'deny')
  t.end()
})

t.test("an UPDATE that moves a controller's pods onto nodes without the image is judged as if just written", (t) => {
  const moving = (kind: string, from: Json, to: Json): Json =>
    review(kind, workload(kind, podSpec([c('myapp:1.0')], to)), {
      operation: 'UPDATE',
      oldObject: workload(kind, podSpec([c('myapp:1.0')], from)),
    })
  // kube-controller-manager: a changed template is a new ReplicaSet (pkg/controller/deployment
  // getNewReplicaSet), whose pods go where the new nodeSelector says; myapp:1.0 is on w1 and w2 only.
  t.equal(outcome(verdict(moving('Deployment', web, { nodeSelector: { pool: 'v6' } }))), 'deny', 'nodeSelector moved')
  t.equal(
    outcome(verdict(moving('DaemonSet', web, { nodeSelector: { pool: 'v6' } }))),
    'deny',
    'a DaemonSet moved: pods start on the new nodes',
  )
  t.equal(
    outcome(verdict(moving('Deployment', web, { nodeSelector: { pool: 'web', 'kubernetes.io/os': 'linux' } }))),
    'allow',
    'moved, to nodes that all have the image',
  )
  // Unchanged placement and image: what runs already is only warned about, as before.
  t.equal(
    outcome(verdict(moving('Deployment', { nodeSelector: { pool: 'v6' } }, { nodeSelector: { pool: 'v6' } }))),
    'warn',
    'nothing moved: a warning',
  )
  t.end()
})
