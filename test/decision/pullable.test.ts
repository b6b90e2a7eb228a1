import t from 'tap'
import { decide, type Decision, type Subject } from '../../src/decision/decide.js'
import { denialMessage, warningsFor } from '../../src/decision/messages.js'
import { checkPodReview } from '../../src/admission/pod-check.js'
import { ANY_REGISTRY, parsePullableRegistries, type PullableRegistries } from '../../src/api/registries.js'
import type { Mode } from '../../src/api/types.js'
import type { ContainerFacts, PodTemplateFacts } from '../../src/workload/pod-template.js'
import type { Placement } from '../../src/api/scheduling.js'
import { buildIndex, NOW } from '../helpers/inventory.js'

// Pulls that cannot happen: an IfNotPresent image from a registry the nodes cannot pull
// from is judged like Never; an Always one is denied, present or not.

const index = buildIndex([
  {
    name: 'a1',
    labels: { zone: 'a' },
    images: ['docker.io/library/myapp:1.0', 'registry.corp:5000/team/api:2', 'localhost/dev:1'],
  },
  { name: 'a2', labels: { zone: 'a' }, images: ['docker.io/library/myapp:1.0', 'registry.corp:5000/team/api:2'] },
  { name: 'b1', labels: { zone: 'b' }, images: [] },
])

function registries(text: string): PullableRegistries {
  const parsed = parsePullableRegistries(text)
  if (!parsed.ok) throw new Error(parsed.error)
  return parsed.value
}

const c = (image: string, pullPolicy: string, name = 'app'): ContainerFacts => ({
  kind: 'container',
  name,
  image,
  pullPolicy,
})
const tpl = (
  containers: ContainerFacts[],
  placement: Partial<Placement> = { nodeSelector: { zone: 'a' } },
): PodTemplateFacts => ({
  kind: 'Pod',
  perNode: false,
  mirror: false,
  placement: { tolerations: [], ...placement },
  containers,
})
const subject: Subject = { kind: 'Pod', namespace: 'air', name: 'web', operation: 'CREATE' }

function run(
  template: PodTemplateFacts,
  pullable: PullableRegistries,
  mode: Mode = 'enforce',
  previous?: PodTemplateFacts,
): Decision {
  return decide(index, { subject, template, mode, now: NOW, pullable, ...(previous === undefined ? {} : { previous }) })
}

t.test('the table: policy, registry and presence', (t) => {
  const corp = registries('registry.corp:5000')
  const table: Array<[string, ContainerFacts, PullableRegistries, string | undefined, string]> = [
    ['default * checks nothing but Never', c('ghcr.io/o/gone:1', 'IfNotPresent'), ANY_REGISTRY, undefined, 'allow'],
    ['* with Always from anywhere', c('ghcr.io/o/a:1', 'Always'), ANY_REGISTRY, undefined, 'allow'],
    [
      'IfNotPresent, pullable registry, absent: the kubelet pulls',
      c('registry.corp:5000/team/new:1', 'IfNotPresent'),
      corp,
      undefined,
      'allow',
    ],
    ['IfNotPresent, unpullable, present everywhere eligible', c('myapp:1.0', 'IfNotPresent'), corp, 'present', 'allow'],
    ['IfNotPresent, unpullable (nginx is docker.io), absent', c('nginx:1.27', 'IfNotPresent'), corp, 'missing', 'deny'],
    ['IfNotPresent, unpullable, on one of two eligible', c('localhost/dev:1', 'IfNotPresent'), corp, 'partial', 'warn'],
    ['Always, unpullable, present: still denied', c('myapp:1.0', 'Always'), corp, 'unpullable', 'deny'],
    ['Always, pullable', c('registry.corp:5000/team/api:2', 'Always'), corp, undefined, 'allow'],
    [
      'port matters: registry.corp is not registry.corp:5000',
      c('registry.corp/team/api:2', 'IfNotPresent'),
      corp,
      'missing',
      'deny',
    ],
    [
      'localhost listed, localhost:5000 not',
      c('localhost:5000/dev:1', 'IfNotPresent'),
      registries('localhost'),
      'missing',
      'deny',
    ],
    [
      'localhost listed, localhost image present on a1 only',
      c('localhost/dev:1', 'Always'),
      registries('localhost'),
      undefined,
      'allow',
    ],
    [
      'docker.io listed covers familiar names',
      c('nginx:1.27', 'Always'),
      registries('index.docker.io'),
      undefined,
      'allow',
    ],
    [
      'none: nothing is pullable',
      c('registry.corp:5000/team/api:2', 'IfNotPresent'),
      registries('none'),
      'present',
      'allow',
    ],
    [
      'no policy, tag latest: Always by default',
      c('registry.corp:5000/team/api', ''),
      registries('none'),
      'unpullable',
      'deny',
    ],
    [
      'no policy, tag 2: IfNotPresent by default',
      c('registry.corp:5000/team/api:2', ''),
      registries('none'),
      'present',
      'allow',
    ],
    ['Never is judged as always', c('nginx:1.27', 'Never'), ANY_REGISTRY, 'missing', 'deny'],
  ]
  for (const [name, container, pullable, reason, verdict] of table) {
    const d = run(tpl([container]), pullable)
    t.equal(d.findings[0]?.reason, reason, `${name}: reason`)
    t.equal(d.verdict, verdict, `${name}: verdict`)
  }
  t.end()
})

t.test('the messages say which registry, what the kubelet will do, and how to fix it', (t) => {
  const corp = registries('registry.corp:5000')
  let d = run(tpl([c('nginx:1.27', 'IfNotPresent')]), corp)
  let text = denialMessage(d, subject)
  t.match(
    text.split('\n')[0],
    /image "nginx:1.27" \(imagePullPolicy: IfNotPresent; registry docker.io is not pullable from the nodes\) is on none of the 2 eligible nodes \(a1, a2\).*fail with ErrImagePull/,
  )
  t.match(
    text,
    /push the image to a registry the nodes can pull from; or, if they can reach docker.io, add it to the webhook's --pullable-registries or to the namespace annotation neverpull.dev\/pullable-registries/,
  )
  t.notMatch(text, /IfNotPresent so the kubelet may pull it/, 'no advice that cannot work')

  d = run(tpl([c('myapp:1.0', 'Always')]), corp)
  text = denialMessage(d, subject)
  t.match(
    text,
    /has imagePullPolicy: Always, but registry docker.io is not pullable from the nodes: the kubelet contacts the registry on every start and fails with ErrImagePull; it is on all 2 eligible nodes, so imagePullPolicy: IfNotPresent would use it/,
  )
  t.match(text, /set imagePullPolicy: IfNotPresent \(or Never\)/)
  t.notMatch(text, /load the image onto those nodes/, 'present everywhere: nothing to load')

  d = run(tpl([c('myapp:1.0', 'Always')]), corp, 'warn')
  t.equal(d.verdict, 'warn', 'warn mode turns it into a warning')
  const warnings = warningsFor(d, subject)
  t.equal(warnings.length, 2)
  for (const w of warnings) t.ok([...w].length <= 256 && !/[\n\r]/.test(w), 'one line, capped')
  t.match(
    warnings[0],
    /^Fix: use imagePullPolicy: IfNotPresent with the image on the nodes/,
    'the fix comes first (it survives a shared warning budget)',
  )

  d = run(tpl([c('myapp:1.0', 'Always')]), corp, 'audit')
  t.equal(d.verdict, 'allow')
  t.equal(d.outcome, 'deny', 'audit logs the would-be denial')
  t.end()
})

t.test('image volumes are judged the same way', (t) => {
  const corp = registries('registry.corp:5000')
  const volume: ContainerFacts = {
    kind: 'imageVolume',
    name: 'models',
    image: 'ghcr.io/o/models:1',
    pullPolicy: 'IfNotPresent',
  }
  const d = run(tpl([volume]), corp)
  t.equal(d.findings[0]?.reason, 'missing')
  t.equal(d.verdict, 'deny')
  t.match(denialMessage(d, subject), /"models".*registry ghcr.io is not pullable from the nodes/)
  t.equal(run(tpl([{ ...volume, pullPolicy: 'Always' }]), corp).findings[0]?.reason, 'unpullable')
  t.equal(run(tpl([volume]), ANY_REGISTRY).verdict, 'allow', 'default *: not checked')
  t.end()
})

t.test('an UPDATE that did not touch the container only warns', (t) => {
  const corp = registries('registry.corp:5000')
  const before = tpl([c('myapp:1.0', 'Always')])
  const d = run(tpl([c('myapp:1.0', 'Always'), c('myapp:1.0', 'Never', 'side')]), corp, 'enforce', before)
  t.equal(d.findings[0]?.severity, 'warn')
  t.equal(d.verdict, 'warn')
  t.end()
})

t.test('through admission: the namespace annotation overrides the flag, and placement is read', (t) => {
  const view = buildIndex([
    { name: 'a1', labels: { zone: 'a' }, images: ['docker.io/library/myapp:1.0'] },
    { name: 'b1', labels: { zone: 'b' }, images: [] },
  ])
  view.setNamespacePullableRegistries('air', registries('registry.corp:5000'))
  const pod = (namespace: string, pullPolicy: string) => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'u1',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation: 'CREATE',
      userInfo: { username: 'me' },
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', namespace },
        spec: {
          nodeSelector: { zone: 'a' },
          containers: [{ name: 'app', image: 'myapp:1.0', imagePullPolicy: pullPolicy }],
        },
      },
    },
  })
  const ctx = { inventory: view, mode: 'enforce' as const, now: NOW }
  let r = checkPodReview(pod('air', 'IfNotPresent'), ctx)
  t.equal(r.reply.response.allowed, true, 'on the only node the nodeSelector allows: the placement was read')
  t.same(r.reply.response.warnings ?? [], [])
  r = checkPodReview(pod('air', 'Always'), ctx)
  t.equal(r.reply.response.allowed, false, 'Always from docker.io is denied where the annotation excludes it')
  r = checkPodReview(pod('default', 'Always'), ctx)
  t.equal(r.reply.response.allowed, true, 'the flag (default *) applies elsewhere')
  r = checkPodReview(pod('default', 'Always'), { ...ctx, pullable: registries('none') })
  t.equal(r.reply.response.allowed, false, 'the flag applies where no annotation is')
  view.setNamespacePullableRegistries('air', ANY_REGISTRY)
  r = checkPodReview(pod('air', 'Always'), { ...ctx, pullable: registries('none') })
  t.equal(r.reply.response.allowed, true, 'an annotation of * lifts the flag for its namespace')
  t.end()
})
