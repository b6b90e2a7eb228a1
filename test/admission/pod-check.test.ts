import t from 'tap'
import { checkPodReview } from '../../src/admission/pod-check.js'
import { exampleInventory, review, type FixtureReview } from '../helpers/fixtures.js'

const now = Date.parse('2026-11-21T06:00:00Z')
const inventory = exampleInventory(now)
const ctx = { inventory, mode: 'enforce' as const, now }

function answer(body: unknown, mode: 'enforce' | 'warn' | 'audit' = 'enforce') {
  return checkPodReview(body, { ...ctx, mode })
}

t.test('every fixture gets an AdmissionReview in its own version, echoing the uid', async (t) => {
  const names = [
    'pod-create',
    'pod-create-generatename',
    'pod-create-dryrun',
    'pod-create-review-v1beta1',
    'deployment-create',
    'deployment-update-image',
    'daemonset-create',
    'statefulset-create',
    'replicaset-create',
    'job-create',
    'cronjob-v1beta1-create',
    'replicationcontroller-create',
    'podtemplate-create',
  ]
  for (const name of names) {
    const body = review(name)
    const { reply } = answer(body)
    t.equal(reply.apiVersion, body['apiVersion'], `${name}: version`)
    t.equal(reply.kind, 'AdmissionReview')
    t.equal(reply.response.uid, body['request'].uid, `${name}: uid`)
  }
})

t.test('verdicts on the real fixtures against examples/inventory.yaml', async (t) => {
  const expected: Record<string, [boolean, RegExp | null]> = {
    // nodeSelector zone=a + affinity disk=ssd: only node-a, which has myapp:dev and busybox:1.36
    'pod-create': [true, null],
    // no placement: node-a and node-b eligible (node-c is tainted); myapp:dev only on node-a
    'pod-create-generatename': [true, /is on 1 of 2 eligible nodes \(node-a\), missing on node-b/],
    'deployment-create': [true, null],
    'deployment-update-image': [false, /did you mean registry.local:5000\/team\/api:1.4.2\?/],
    'daemonset-create': [true, null],
    'statefulset-create': [true, /"postgres:16" \(imagePullPolicy: Never\) is on 1 of 2 eligible nodes/],
    'cronjob-v1beta1-create': [true, /container "report": image "myapp:dev"/],
  }
  for (const [name, [allowed, pattern]] of Object.entries(expected)) {
    const { reply, record } = answer(review(name))
    t.equal(reply.response.allowed, allowed, `${name}: allowed`)
    const text = [reply.response.status?.message ?? '', ...(reply.response.warnings ?? [])].join('\n')
    if (pattern === null) t.equal(text, '', `${name}: silent`)
    else t.match(text, pattern, `${name}: message`)
    t.equal(record.uid, review(name)['request'].uid)
  }
})

t.test('a denial carries code 403, reason Forbidden and a first line that stands alone', async (t) => {
  const body = review('pod-create')
  body['request'].object.spec.containers[0].image = 'myapp:1.1'
  const { reply, record } = answer(body)
  t.equal(reply.response.allowed, false)
  t.equal(reply.response.status?.code, 403)
  t.equal(reply.response.status?.reason, 'Forbidden')
  t.equal(
    reply.response.status?.message.split('\n')[0],
    'Pod default/web: container "app": image "myapp:1.1" (imagePullPolicy: Never) is not on the only eligible node (node-a); did you mean myapp:1.0, myapp:dev?',
  )
  t.equal(record.decision, 'deny')
  t.same(
    record.findings?.map((f) => f.reason),
    ['present', 'missing'],
  )
  t.notOk('patch' in reply.response, 'a validating webhook never patches')
})

t.test('the same denial in warn and audit modes', async (t) => {
  const body = review('deployment-update-image')
  const warn = answer(body, 'warn')
  t.equal(warn.reply.response.allowed, true)
  t.match(warn.reply.response.warnings?.[0], /registry.local:5000\/team\/api:1.5.0/)
  const audit = answer(body, 'audit')
  t.equal(audit.reply.response.allowed, true)
  t.equal(audit.reply.response.warnings, undefined)
  t.equal(audit.record.outcome, 'deny', 'audit logs what enforce would do')
})

t.test('namespace label neverpull.dev/mode overrides the global mode', async (t) => {
  const body = review('deployment-update-image')
  body['request'].namespace = 'sandbox'
  const { reply, record } = answer(body)
  t.equal(reply.response.allowed, true)
  t.equal(record.mode, 'warn')
})

t.test('DaemonSet that tolerates everything must have the image on node-c too', async (t) => {
  const body = review('daemonset-create')
  body['request'].object.spec.template.spec.tolerations = [{ operator: 'Exists' }]
  const { reply } = answer(body)
  t.equal(reply.response.allowed, false)
  t.match(
    reply.response.status?.message,
    /DaemonSet default\/node-agent: container "agent": image "agent@sha256:4b0f[0-9a-f]+" \(imagePullPolicy: Never\) is on 2 of 3 eligible nodes \(node-a, node-b\), missing on node-c; its daemon pods there would fail/,
  )
})

t.test('ephemeral containers: only the bound node counts, only new containers can deny', async (t) => {
  const body = review('pod-create')
  const pod = body['request'].object
  pod.spec.nodeName = 'node-b'
  const old = structuredClone(pod)
  pod.spec.ephemeralContainers = [
    { name: 'debug', image: 'busybox:1.36', imagePullPolicy: 'Never' },
    { name: 'dbg2', image: 'myapp:dev', imagePullPolicy: 'Never' },
  ]
  old.spec.containers[0].image = 'myapp:dev'
  Object.assign(body['request'], { operation: 'UPDATE', subResource: 'ephemeralcontainers', oldObject: old })
  const { reply } = answer(body)
  t.equal(reply.response.allowed, false)
  const msg = reply.response.status?.message ?? ''
  t.match(
    msg,
    /ephemeral container "dbg2": image "myapp:dev" \(imagePullPolicy: Never\) is not on the only eligible node \(node-b\)/,
  )
  t.notMatch(msg, /"debug"/, 'busybox is on node-b')
  t.match(
    reply.response.warnings?.join('\n'),
    /container "app": image "myapp:dev" .* not on the only eligible node/,
    'the unchanged container only warns',
  )
})

t.test('what the webhook does not check is allowed untouched', async (t) => {
  const cases: Array<[string, (r: FixtureReview['request']) => void]> = [
    ['DELETE', (r) => Object.assign(r, { operation: 'DELETE', object: null })],
    ['pods/status', (r) => Object.assign(r, { subResource: 'status' })],
    [
      'a ConfigMap',
      (r) => Object.assign(r, { kind: { group: '', version: 'v1', kind: 'ConfigMap' }, object: { data: {} } }),
    ],
    [
      'a Deployment-named kind of another group',
      (r) => Object.assign(r, { kind: { group: 'example.com', version: 'v1', kind: 'Deployment' } }),
    ],
    [
      'a ReplicationController with a null template',
      (r) =>
        Object.assign(r, {
          kind: { group: '', version: 'v1', kind: 'ReplicationController' },
          object: { spec: { template: null } },
        }),
    ],
  ]
  for (const [name, mutate] of cases) {
    const body = review('pod-create')
    body['request'].object.spec.containers[0].image = 'missing:1'
    mutate(body['request'])
    const { reply } = answer(body)
    t.same(reply.response, { uid: body['request'].uid, allowed: true }, name)
  }
})

t.test('malformed reviews get allowed=false, code 400 and what is wrong, with the uid when there is one', async (t) => {
  const cases: Array<[string, unknown, RegExp, string]> = [
    ['not an object', 42, /malformed AdmissionReview: the body must be object/, ''],
    [
      'no request',
      { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' },
      /must have required property 'request'/,
      '',
    ],
    [
      'wrong version',
      { ...review('pod-create'), apiVersion: 'admission.k8s.io/v2' },
      /apiVersion must be one of \["admission.k8s.io\/v1","admission.k8s.io\/v1beta1"\]/,
      'cd6e7c6f-8241-4fe9-ad72-9312607d3929',
    ],
    [
      'bad operation',
      (() => {
        const r = review('pod-create')
        r['request'].operation = 'PATCH'
        return r
      })(),
      /request.operation must be one of/,
      'cd6e7c6f-8241-4fe9-ad72-9312607d3929',
    ],
    [
      'containers not a list',
      (() => {
        const r = review('pod-create')
        Object.assign(r['request'].object.spec, { containers: {} })
        return r
      })(),
      /malformed Pod: spec.containers must be an array/,
      'cd6e7c6f-8241-4fe9-ad72-9312607d3929',
    ],
    [
      'image not a string',
      (() => {
        const r = review('pod-create')
        Object.assign(r['request'].object.spec.containers[0], { image: 7 })
        return r
      })(),
      /spec.containers\[0\].image must be a string/,
      'cd6e7c6f-8241-4fe9-ad72-9312607d3929',
    ],
  ]
  for (const [name, body, pattern, uid] of cases) {
    const { reply, record } = answer(body)
    t.equal(reply.kind, 'AdmissionReview', name)
    t.equal(reply.response.allowed, false, name)
    t.equal(reply.response.status?.code, 400, name)
    t.match(reply.response.status?.message, pattern, name)
    t.equal(reply.response.uid, uid, `${name}: uid`)
    t.equal(record.decision, 'invalid')
  }
})

t.test('a DaemonSet with nodeName on a tainted node it does not tolerate is not denied', async (t) => {
  const body = review('daemonset-create')
  body['request'].object.spec.template.spec.nodeName = 'node-c'
  body['request'].object.spec.template.spec.containers[0].image = 'nothere:1'
  const { reply } = answer(body)
  t.equal(reply.response.allowed, true, 'NodeShouldRunDaemonPod: node-c taint untolerated, no daemon pod there')
  body['request'].object.spec.template.spec.nodeName = 'node-a'
  t.equal(answer(body).reply.response.allowed, false, 'on node-a the daemon runs and the image is missing')
})

t.test('a template container without an image is not ours to judge', async (t) => {
  const body = review('deployment-create')
  delete body['request'].object.spec.template.spec.containers[0].image
  const { reply } = answer(body)
  t.equal(reply.response.allowed, true)
  t.same(reply.response.warnings ?? [], [])
})

t.test('replicas: 0, suspend: true and PodTemplates are warned, never denied', async (t) => {
  const zero = review('deployment-update-image')
  zero['request'].object.spec.replicas = 0
  let { reply } = answer(zero)
  t.equal(reply.response.allowed, true, 'the same update is denied at replicas 3 (see above), warned at 0')
  t.match(
    reply.response.warnings?.[0],
    /^Deployment \S+ is scaled to zero, so no pod runs yet; these images matter once it is scaled up$/,
  )
  const cron = review('cronjob-v1beta1-create')
  cron['request'].object.spec.suspend = true
  cron['request'].object.spec.jobTemplate.spec.template.spec.containers[0].image = 'nothere:1'
  ;({ reply } = answer(cron))
  t.equal(reply.response.allowed, true)
  t.match(reply.response.warnings?.[0], /is suspended, so nothing runs yet; these images matter once it is resumed/)
  const tpl = review('podtemplate-create')
  tpl['request'].object.template.spec.containers[0].image = 'nothere:1'
  tpl['request'].object.template.spec.containers[0].imagePullPolicy = 'Never'
  ;({ reply } = answer(tpl))
  t.equal(reply.response.allowed, true)
  t.match(reply.response.warnings?.[0], /only stores a template, so nothing runs from it/)
})

t.test('a Deployment whose image volume has pullPolicy: Never is judged like a container', async (t) => {
  const body = review('deployment-create')
  body['request'].object.spec.template.spec.volumes = [
    { name: 'models', image: { reference: 'models:v3', pullPolicy: 'Never' } },
  ]
  const { reply } = answer(body)
  t.equal(reply.response.allowed, false)
  t.match(reply.response.status?.message, /image volume "models": image "models:v3" \(pullPolicy: Never\)/)
})

// plugin/pkg/admission/runtimeclass/admission.go setScheduling merges the RuntimeClass into
// each pod, never into the Deployment: the webhook merges it to judge the template.
t.test('a Deployment naming a RuntimeClass is judged on the nodes its pods will get', async (t) => {
  const view = exampleInventory(now)
  const body = review('deployment-create')
  const spec = body['request'].object.spec.template.spec
  spec.containers[0].image = 'nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04'
  spec.runtimeClassName = 'nvidia'
  const ask = () => checkPodReview(structuredClone(body), { inventory: view, mode: 'enforce', now })
  let { reply } = ask()
  t.equal(reply.response.allowed, true, 'RuntimeClass unknown: never a denial')
  t.match(reply.response.warnings?.[0], /RuntimeClass "nvidia" is not in neverpull-guard's inventory/)
  view.upsertRuntimeClass({
    name: 'nvidia',
    handler: 'nvidia',
    nodeSelector: { accelerator: 'nvidia' },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }],
  })
  view.setRuntimeClassesComplete(true)
  ;({ reply } = ask())
  t.equal(reply.response.allowed, true, 'its pods go to node-c, which has the image')
  t.same(reply.response.warnings ?? [], [])
  delete spec.runtimeClassName
  ;({ reply } = ask())
  t.equal(reply.response.allowed, false, 'without the RuntimeClass the pods go to node-a and node-b, which lack it')
  const pod = review('pod-create')
  pod['request'].object.spec.runtimeClassName = 'nvidia'
  pod['request'].object.spec.containers[0].image = 'nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04'
  t.equal(
    checkPodReview(pod, { inventory: view, mode: 'enforce', now }).reply.response.allowed,
    false,
    'a Pod arrives merged already: judged as it is',
  )
})
