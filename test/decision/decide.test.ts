import t from 'tap'
import { decide, suggest, type Decision, type Subject } from '../../src/decision/decide.js'
import {
  cap,
  denialMessage,
  MAX_WARNING_RUNES,
  MAX_WARNINGS_TOTAL_RUNES,
  warningsFor,
} from '../../src/decision/messages.js'
import type { Mode } from '../../src/api/types.js'
import type { ContainerFacts, PodTemplateFacts } from '../../src/workload/pod-template.js'
import { daemonSetTolerations, type Placement } from '../../src/api/scheduling.js'
import { buildIndex, NOW, runtimeImage, STALE_MS } from '../helpers/inventory.js'

const APP = 'docker.io/library/myapp:1.0'
const index = buildIndex([
  { name: 'a1', labels: { zone: 'a' }, images: [APP, 'docker.io/library/myapp:dev', 'docker.io/library/busybox:1.36'] },
  { name: 'a2', labels: { zone: 'a' }, images: [APP, 'docker.io/library/busybox:1.36'] },
  { name: 'b1', labels: { zone: 'b' }, images: ['docker.io/library/busybox:1.36', 'docker.io/library/myapp:dev'] },
  { name: 'b2', labels: { zone: 'b' }, images: ['docker.io/library/busybox:1.36'], age: STALE_MS * 2 },
  { name: 'c1', labels: { zone: 'c' } },
  {
    name: 'g1',
    labels: { zone: 'g' },
    taints: [{ key: 'gpu', effect: 'NoSchedule' }],
    images: ['docker.io/library/cuda:12'],
  },
])

const never = (image: string, name = 'app', kind: ContainerFacts['kind'] = 'container'): ContainerFacts => ({
  kind,
  name,
  image,
  pullPolicy: 'Never',
})

function template(
  containers: ContainerFacts[],
  placement: Partial<Placement> = {},
  extra: Partial<PodTemplateFacts> = {},
): PodTemplateFacts {
  return {
    kind: 'Pod',
    perNode: false,
    mirror: false,
    placement: { tolerations: [], ...placement },
    containers,
    ...extra,
  }
}

const subject: Subject = { kind: 'Pod', namespace: 'default', name: 'web', operation: 'CREATE' }

function run(tpl: PodTemplateFacts, mode: Mode = 'enforce', previous?: PodTemplateFacts | null): Decision {
  return decide(index, { subject, template: tpl, mode, now: NOW, ...(previous === undefined ? {} : { previous }) })
}

t.test('each branch of the decision', async (t) => {
  const table: Array<[string, PodTemplateFacts, string, string]> = [
    [
      'present on every eligible node',
      template([never('myapp:1.0')], { nodeSelector: { zone: 'a' } }),
      'present',
      'allow',
    ],
    [
      'missing on every eligible node, all known',
      template([never('myapp:2.0')], { nodeSelector: { zone: 'a' } }),
      'missing',
      'deny',
    ],
    [
      'present on some eligible nodes',
      template([never('myapp:dev')], { nodeSelector: { zone: 'a' } }),
      'partial',
      'warn',
    ],
    [
      'absent where known, unknown on others',
      template([never('myapp:1.0')], { nodeSelector: { zone: 'b' } }),
      'unknown',
      'warn',
    ],
    [
      'no current list anywhere eligible',
      template([never('myapp:1.0')], { nodeSelector: { zone: 'c' } }),
      'unknown',
      'warn',
    ],
    ['no eligible node', template([never('myapp:1.0')], { nodeSelector: { zone: 'z' } }), 'no-eligible-nodes', 'warn'],
    ['bound to an unknown node', template([never('myapp:1.0')], { nodeName: 'ghost' }), 'unknown-node', 'warn'],
    ['bound to a node that has it', template([never('myapp:dev')], { nodeName: 'b1' }), 'present', 'allow'],
    ['bound to a node that lacks it', template([never('myapp:1.0')], { nodeName: 'b1' }), 'missing', 'deny'],
    ['invalid reference', template([never('MyApp:1.0')]), 'invalid-reference', 'deny'],
    [
      'a stale list that names the image still counts as present (stale data never denies)',
      template([never('busybox:1.36')], { nodeSelector: { zone: 'b' } }),
      'present',
      'allow',
    ],
  ]
  for (const [name, tpl, reason, verdict] of table) {
    const d = run(tpl)
    t.equal(d.findings[0]?.reason, reason, `${name}: reason`)
    t.equal(d.verdict, verdict, `${name}: verdict`)
  }
})

t.test('containers without imagePullPolicy: Never are not checked', async (t) => {
  const d = run(template([{ kind: 'container', name: 'x', image: 'nope:1', pullPolicy: 'IfNotPresent' }]))
  t.same(d.findings, [])
  t.equal(d.verdict, 'allow')
})

t.test('references match like the kubelet: familiar names, implied latest, digests, ids', async (t) => {
  const image = index.node(index.slotOf('a1')!)
  t.ok(image)
  const forms = ['myapp:1.0', 'docker.io/library/myapp:1.0', 'index.docker.io/library/myapp:1.0', 'library/myapp:1.0']
  for (const f of forms) t.equal(run(template([never(f)], { nodeSelector: { zone: 'a' } })).verdict, 'allow', f)
  t.equal(
    run(template([never('myapp')], { nodeSelector: { zone: 'a' } })).findings[0]?.reason,
    'missing',
    'no tag means :latest',
  )
})

t.test('DaemonSets need the image on every eligible node', async (t) => {
  const ds = (image: string, placement: Partial<Placement> = {}) =>
    template(
      [never(image)],
      { tolerations: daemonSetTolerations(false), ...placement },
      { kind: 'DaemonSet', perNode: true },
    )
  let d = run(ds('myapp:dev', { nodeSelector: { zone: 'a' } }))
  t.equal(d.findings[0]?.reason, 'partial')
  t.equal(d.verdict, 'deny', 'partial presence denies a DaemonSet')
  t.match(denialMessage(d, subject), /is on 1 of 2 eligible nodes \(a1\), missing on a2/)
  d = run(ds('busybox:1.36', { nodeSelector: { zone: 'b' } }))
  t.equal(d.verdict, 'allow', 'stale b2 still proves nothing missing: busybox is present on both by their lists')
  d = run(ds('myapp:dev', { nodeSelector: { zone: 'b' } }))
  t.equal(d.findings[0]?.reason, 'partial')
  t.equal(d.verdict, 'warn', 'missing only where the list is stale: warn, never deny on missing data')
})

t.test('UPDATE: only changed containers can deny', async (t) => {
  const before = template([never('myapp:2.0'), never('myapp:1.0', 'side')], { nodeSelector: { zone: 'a' } })
  const same = template([never('myapp:2.0'), never('myapp:1.0', 'side')], { nodeSelector: { zone: 'a' } })
  let d = run(same, 'enforce', before)
  t.equal(d.verdict, 'warn', 'unchanged missing image: warn, so relabels and scaling are never blocked')
  t.equal(d.findings[0]?.changed, false)
  const changed = template([never('myapp:2.0'), never('myapp:3.0', 'side')], { nodeSelector: { zone: 'a' } })
  d = run(changed, 'enforce', before)
  t.equal(d.verdict, 'deny')
  t.same(
    d.findings.map((f) => [f.container.name, f.changed, f.severity]),
    [
      ['app', false, 'warn'],
      ['side', true, 'deny'],
    ],
  )
  const policyChanged = template([never('myapp:2.0')], { nodeSelector: { zone: 'a' } })
  const wasIfNotPresent = template(
    [{ kind: 'container', name: 'app', image: 'myapp:2.0', pullPolicy: 'IfNotPresent' }],
    { nodeSelector: { zone: 'a' } },
  )
  t.equal(run(policyChanged, 'enforce', wasIfNotPresent).verdict, 'deny', 'switching to Never is a change')
  t.equal(run(policyChanged, 'enforce', null).verdict, 'deny', 'no previous template: every container is new')
})

t.test('mirror pods are never denied', async (t) => {
  const d = run(template([never('myapp:2.0')], { nodeName: 'a1' }, { mirror: true }))
  t.equal(d.outcome, 'warn')
})

t.test('modes', async (t) => {
  const tpl = template([never('myapp:2.0')], { nodeSelector: { zone: 'a' } })
  const enforce = run(tpl, 'enforce')
  t.equal(enforce.verdict, 'deny')
  const warn = run(tpl, 'warn')
  t.equal(warn.verdict, 'warn')
  t.equal(warn.outcome, 'deny', 'the outcome still says what enforce would do')
  t.ok(warningsFor(warn, subject).length >= 2, 'the denial becomes a warning plus the fix')
  const audit = run(tpl, 'audit')
  t.equal(audit.verdict, 'allow')
  t.equal(audit.outcome, 'deny')
  t.same(warningsFor(audit, subject), [], 'audit only logs and counts')
  const off = run(tpl, 'off')
  t.same(off.findings, [])
  t.equal(off.verdict, 'allow')
})

t.test('one denial lists every failing container, and names nodes and the fix', async (t) => {
  const d = run(
    template([never('myapp:2.0'), never('busybox:9', 'setup', 'initContainer'), never('myapp:1.0', 'ok')], {
      nodeSelector: { zone: 'a' },
    }),
  )
  t.equal(d.verdict, 'deny')
  const msg = denialMessage(d, subject)
  const [first, ...rest] = msg.split('\n')
  t.match(
    first,
    /^Pod default\/web: 2 containers with imagePullPolicy: Never would fail: container "app" \("myapp:2.0"\), init container "setup" \("busybox:9"\)$/,
  )
  t.match(
    rest[0],
    /container "app": image "myapp:2.0" \(imagePullPolicy: Never\) is on none of the 2 eligible nodes \(a1, a2\); did you mean myapp:1.0/,
  )
  t.match(rest[1], /init container "setup": image "busybox:9" .* did you mean busybox:1.36\?/)
  t.match(msg, /kind load docker-image IMAGE/)
  t.match(msg, /ctr -n k8s.io images import/)
  t.match(msg, /imagePullPolicy: IfNotPresent/)
  t.notMatch(msg, /"ok"/, 'containers that are fine are not in the denial')
})

t.test('a single denial has a self-sufficient first line', async (t) => {
  const d = run(template([never('myapp:2.0')], { nodeSelector: { zone: 'a' } }))
  const first = denialMessage(d, subject).split('\n')[0]!
  t.equal(
    first,
    'Pod default/web: container "app": image "myapp:2.0" (imagePullPolicy: Never) is on none of the 2 eligible nodes (a1, a2); did you mean myapp:1.0, myapp:dev?',
  )
})

t.test('the image elsewhere and near-miss repository names', async (t) => {
  let d = run(template([never('cuda:12')], { nodeSelector: { zone: 'a' } }))
  t.match(denialMessage(d, subject), /it is only on g1, which the placement excludes/)
  d = run(template([never('myap:1.0')], { nodeSelector: { zone: 'a' } }))
  t.match(denialMessage(d, subject), /did you mean myapp:1.0\?/, 'a typo in the repository finds the same tag')
  d = run(template([never('zzzzzz:1')], { nodeSelector: { zone: 'a' } }))
  t.notMatch(denialMessage(d, subject), /did you mean/, 'nothing similar: no suggestion')
})

t.test('partial and unknown warnings', async (t) => {
  let w = warningsFor(run(template([never('myapp:dev')], { nodeSelector: { zone: 'a' } })), subject)
  t.match(
    w[0],
    /^To fix the imagePullPolicy: Never image below: load onto the nodes \(kind load docker-image myapp:dev/,
    'the fix first',
  )
  t.match(
    w[1],
    /^container "app": image "myapp:dev" \(imagePullPolicy: Never\) is on 1 of 2 eligible nodes \(a1\), missing on a2; pods placed elsewhere fail with ErrImageNeverPull$/,
  )
  w = warningsFor(run(template([never('myapp:1.0')], { nodeSelector: { zone: 'b' } })), subject)
  t.match(
    w[0],
    /cannot confirm image "myapp:1.0" \(imagePullPolicy: Never\): not on b1; 1 of 2 eligible nodes have no current image list \(b2\)/,
  )
  t.equal(w.length, 1, 'no fix line when nothing is known to be wrong')
  w = warningsFor(run(template([never('myapp:1.0')], { nodeSelector: { zone: 'z' } })), subject)
  t.match(w[0], /no node matches the nodeSelector, affinity and tolerations of Pod default\/web/)
  t.match(
    w[1],
    /^Pod default\/web: kube-scheduler will report: 0\/\d+ nodes are available: .*\d+ node\(s\) didn't match Pod's node affinity\/selector\.$/,
    "why, in the scheduler's words",
  )
})

t.test('warnings are single lines of at most 256 runes, whatever the input', async (t) => {
  const evil = 'x'.repeat(300) + '\n\u0007\u0085' + '\ud800'
  const d = run(
    template([never(evil, 'c\nd'), never('é'.repeat(200) + ':1', 'ü'.repeat(100))], { nodeSelector: { zone: 'a' } }),
    'warn',
  )
  const warnings = warningsFor(d, subject)
  t.ok(warnings.length >= 2)
  for (const w of warnings) {
    t.ok([...w].length <= MAX_WARNING_RUNES, `${[...w].length} runes`)
    t.notMatch(w, /[^\u0020-\u007e\u00a0-\uffff]/, 'no control characters (C0, DEL, C1)')
    t.notMatch(w, /[\ud800-\udfff]/u, 'no lone surrogates')
  }
  const msg = denialMessage(run(template([never(evil, 'c\nd')], { nodeSelector: { zone: 'a' } })), subject)
  t.notMatch(msg.split('\n')[0]!, '\u0007', 'user input never injects lines or controls into the denial')
})

t.test('cap cuts to exactly the limit with an ASCII mark, rune by rune when astral characters are in', async (t) => {
  const ascii = cap('a'.repeat(300))
  t.equal(ascii.length, MAX_WARNING_RUNES)
  t.ok(ascii.endsWith('a...'), 'ASCII mark: the reply stays a one-byte string')
  t.equal(cap('a'.repeat(256)), 'a'.repeat(256), 'at the limit: kept whole')
  const astral = cap('\u{1F600}'.repeat(300))
  t.equal([...astral].length, MAX_WARNING_RUNES)
  t.ok(astral.endsWith('\u{1F600}...'), 'no surrogate pair split')
})

t.test('many eligible nodes are summarised', async (t) => {
  const big = buildIndex(Array.from({ length: 40 }, (_, i) => ({ name: `n${String(i).padStart(2, '0')}`, images: [] })))
  const d = decide(big, { subject, template: template([never('myapp:2.0')]), mode: 'enforce', now: NOW })
  t.match(denialMessage(d, subject), /is on none of the 40 eligible nodes \(n00, n01, n02 and 37 more\)/)
})

t.test('a denial stays small however many containers fail', async (t) => {
  const containers = Array.from({ length: 2000 }, (_, i) => never(`myapp:${i}.9`, `c${i}`))
  const msg = denialMessage(run(template(containers, { nodeSelector: { zone: 'a' } })), subject)
  t.match(msg.split('\n')[0], /2000 containers with imagePullPolicy: Never would fail: .* and 1995 more$/)
  t.match(msg, /- and 1980 more containers like these/)
  t.ok(msg.length < 12_000, `${msg.length} characters`)
})

// pkg/apis/core/validation validateContainersOnlyForPod: only Pods must carry an image; a
// template's may be filled in later by other admission or tooling. Not ours to judge.
t.test('template containers without an image are left alone', async (t) => {
  for (const image of ['', ' ', '  \t']) {
    const d = run(template([never(image)], { nodeSelector: { zone: 'a' } }, { kind: 'Deployment' }))
    t.same(d.findings, [], `image ${JSON.stringify(image)}: no finding`)
    t.equal(d.verdict, 'allow')
  }
  const d = run(
    template([never(''), never('myapp:2.0', 'real')], { nodeSelector: { zone: 'a' } }, { kind: 'Deployment' }),
  )
  t.same(
    d.findings.map((f) => f.container.name),
    ['real'],
    'the other containers are still checked',
  )
  t.equal(d.verdict, 'deny')
})

t.test('a DaemonSet naming a node the controller would never use is not denied', async (t) => {
  const ds = (nodeName: string, extra: Partial<Placement> = {}) =>
    template(
      [never('cuda:12')],
      { nodeName, nodeNameFiltered: true, tolerations: daemonSetTolerations(false), ...extra },
      { kind: 'DaemonSet', perNode: true },
    )
  let d = run(ds('a1', { nodeSelector: { zone: 'g' } }))
  t.equal(
    d.findings[0]?.reason,
    'no-eligible-nodes',
    'nodeSelector excludes the named node: no daemon pod, nothing to deny',
  )
  t.equal(d.verdict, 'warn')
  d = run(ds('g1'))
  t.equal(d.findings[0]?.reason, 'no-eligible-nodes', 'the gpu taint is not tolerated there')
  d = run(ds('g1', { tolerations: [...daemonSetTolerations(false), { key: 'gpu', operator: 'Exists' }] }))
  t.equal(d.verdict, 'allow', 'tolerated: the image is there')
  d = run(ds('a1'))
  t.equal(d.verdict, 'deny', 'a node that runs the daemon and lacks the image still denies')
})

// Objects that create no pod at admission (KUBERNETES-FACTS §9): replicas: 0 (apps/v1
// DeploymentSpec/ReplicaSetSpec/StatefulSetSpec, core ReplicationControllerSpec), suspend: true
// (batch/v1 CronJobSpec, JobSpec), a Job's parallelism: 0, and core PodTemplates.
t.test('objects that run nothing yet are warned, never denied, saying when the image matters', async (t) => {
  const table: Array<[string, PodTemplateFacts['idle'], RegExp]> = [
    [
      'Deployment',
      'scaled-to-zero',
      /^Deployment default\/web is scaled to zero, so no pod runs yet; these images matter once it is scaled up$/,
    ],
    [
      'CronJob',
      'suspended',
      /^CronJob default\/web is suspended, so nothing runs yet; these images matter once it is resumed$/,
    ],
    [
      'PodTemplate',
      'template-only',
      /^PodTemplate default\/web only stores a template, so nothing runs from it; these images matter when pods are made from it$/,
    ],
  ]
  for (const [kind, idle, note] of table) {
    const s: Subject = { ...subject, kind }
    const d = decide(index, {
      subject: s,
      template: template([never('myapp:2.0')], { nodeSelector: { zone: 'a' } }, { kind, idle }),
      mode: 'enforce',
      now: NOW,
    })
    t.equal(d.findings[0]?.reason, 'missing', `${kind}: still checked`)
    t.equal(d.verdict, 'warn', `${kind}: warned, not denied`)
    const w = warningsFor(d, s)
    t.match(w[0], note, `${kind}: the first warning says nothing runs yet`)
    t.match(w[1], /^To fix/)
    t.match(w[2], /image "myapp:2.0" \(imagePullPolicy: Never\) is on none of the 2 eligible nodes/)
  }
  const fine = run(
    template([never('myapp:1.0')], { nodeSelector: { zone: 'a' } }, { kind: 'Deployment', idle: 'scaled-to-zero' }),
  )
  t.equal(fine.verdict, 'allow', 'nothing wrong: no note either')
  t.same(fine.notes, [])
})

t.test('scaling up from zero (or resuming) makes every image count as just written', async (t) => {
  const asleep = template(
    [never('myapp:2.0')],
    { nodeSelector: { zone: 'a' } },
    { kind: 'Deployment', idle: 'scaled-to-zero' },
  )
  const awake = template([never('myapp:2.0')], { nodeSelector: { zone: 'a' } }, { kind: 'Deployment' })
  t.equal(run(awake, 'enforce', asleep).verdict, 'deny', 'replicas 0 -> 3 with the image missing: the pods would fail')
  t.equal(run(awake, 'enforce', awake).verdict, 'warn', 'an unrelated edit of a running workload still only warns')
  t.equal(run(asleep, 'enforce', awake).verdict, 'warn', 'scaling down to zero never denies')
})

// k8s.io/api core/v1 toleration.go ToleratesTaint: Lt/Gt are served only with the alpha gate
// TaintTolerationComparisonOperators (1.35); the webhook cannot see the scheduler's gates.
t.test('a toleration with an operator the scheduler may not serve never leads to a denial', async (t) => {
  for (const operator of ['Gt', 'Lt', 'Like']) {
    const tolerations = [{ key: 'gpu', operator, value: '1' } as unknown as Placement['tolerations'][number]]
    const d = run(template([never('myapp:2.0')], { nodeSelector: { zone: 'a' }, tolerations }))
    t.equal(d.verdict, 'warn', `${operator}: warn`)
    t.same(d.notes, [{ reason: 'toleration-operator', detail: operator }])
    t.match(
      warningsFor(d, subject)[0],
      operator === 'Like'
        ? /operator "Like", which neverpull-guard does not know/
        : new RegExp(`operator "${operator}", which only schedulers with TaintTolerationComparisonOperators`),
    )
  }
  const d = run(
    template([never('myapp:2.0')], { nodeSelector: { zone: 'a' }, tolerations: [{ key: 'gpu', operator: 'Exists' }] }),
  )
  t.equal(d.verdict, 'deny', 'Exists and Equal are served everywhere')
})

// k8s.io/apiserver pkg/endpoints/filters/warning.go recorder.AddWarning: past 4,096 runes in
// total, every warning is cut to 256 runes and later ones are dropped.
t.test('warnings stay within the apiserver budget and still name every container', async (t) => {
  const check = (w: string[], what: string): void => {
    t.ok(
      w.every((l) => [...l].length <= MAX_WARNING_RUNES),
      `${what}: every warning <= 256 runes`,
    )
    const sum = w.reduce((n, l) => n + [...l].length, 0)
    t.ok(sum <= MAX_WARNINGS_TOTAL_RUNES, `${what}: ${sum} runes in total`)
    t.equal(new Set(w).size, w.length, `${what}: no duplicates for the apiserver to drop`)
  }
  // 20 containers with their images on only some of the eligible nodes.
  const name = (i: number): string => `worker-${String(i).padStart(2, '0')}-of-the-batch-pipeline-with-a-long-name`
  const partial = Array.from({ length: 20 }, (_, i) => never('myapp:dev', name(i)))
  let w = warningsFor(run(template(partial, { nodeSelector: { zone: 'a' } })), subject)
  check(w, '20 partial')
  t.match(w[0], /^To fix the imagePullPolicy: Never image below/, 'the fix comes first')
  for (let i = 0; i < 20; i++)
    t.ok(
      w.some((l) => l.includes(`"${name(i)}"`)),
      `worker ${i} named`,
    )
  t.match(w[1], /^20 containers, image on only some eligible nodes: container "worker-00/, 'grouped')
  const short = Array.from({ length: 20 }, (_, i) => never('myapp:dev', `w${i}`))
  w = warningsFor(run(template(short, { nodeSelector: { zone: 'a' } })), subject)
  check(w, '20 partial, short names')
  t.equal(w.length, 21, 'when one line each fits, each container keeps its detailed line')

  // Different images per container, with notes in front.
  const mixed = Array.from({ length: 20 }, (_, i) =>
    never(`registry.example.com/team/very-long-repository-name-${i}:v1.2.${i}`, `c${i}`),
  )
  const d = decide(index, {
    subject: { ...subject, kind: 'Deployment' },
    template: template(mixed, { nodeSelector: { zone: 'a' } }, { kind: 'Deployment', idle: 'scaled-to-zero' }),
    mode: 'enforce',
    now: NOW,
  })
  w = warningsFor(d, { ...subject, kind: 'Deployment' })
  check(w, '20 missing, idle')
  t.match(w[0], /scaled to zero/)
  for (let i = 0; i < 20; i++)
    t.ok(
      w.some((l) => l.includes(`"c${i}"`)),
      `c${i} named`,
    )

  // So many that not even the names fit: a count of the rest.
  const many = Array.from({ length: 400 }, (_, i) => never('myapp:dev', `container-number-${i}`))
  w = warningsFor(run(template(many, { nodeSelector: { zone: 'a' } })), subject)
  check(w, '400 partial')
  t.match(w[w.length - 1], /^and \d+ more containers like these$/)

  // Few findings keep one detailed line each.
  w = warningsFor(
    run(template([never('myapp:dev'), never('myapp:dev', 'b')], { nodeSelector: { zone: 'a' } })),
    subject,
  )
  t.equal(w.length, 3)
  t.match(w[2], /container "b": image "myapp:dev" \(imagePullPolicy: Never\) is on 1 of 2 eligible nodes/)
})

t.test('image volumes with pullPolicy: Never need their image like a container, named in the message', async (t) => {
  const vol = (image: string, pullPolicy: string): ContainerFacts => ({
    kind: 'imageVolume',
    name: 'models',
    image,
    pullPolicy,
  })
  let d = run(template([vol('myapp:2.0', 'Never')], { nodeSelector: { zone: 'a' } }))
  t.equal(d.verdict, 'deny')
  t.equal(
    denialMessage(d, subject).split('\n')[0],
    'Pod default/web: image volume "models": image "myapp:2.0" (pullPolicy: Never) is on none of the 2 eligible nodes (a1, a2); did you mean myapp:1.0, myapp:dev?',
  )
  d = run(template([vol('myapp:1.0', 'Never')], { nodeSelector: { zone: 'a' } }))
  t.equal(d.verdict, 'allow', 'present on every eligible node')
  for (const policy of ['IfNotPresent', 'Always', '']) {
    t.same(
      run(template([vol('myapp:2.0', policy)], { nodeSelector: { zone: 'a' } })).findings,
      [],
      `pullPolicy ${JSON.stringify(policy)}: the kubelet may pull`,
    )
  }
  d = run(template([vol('myapp:dev', 'Never')], { nodeSelector: { zone: 'a' } }))
  t.match(
    warningsFor(d, subject)[1],
    /^image volume "models": image "myapp:dev" \(pullPolicy: Never\) is on 1 of 2 eligible nodes/,
  )
})

t.test('"did you mean" is remembered by the index only until the repository changes', async (t) => {
  const index = buildIndex([{ name: 'n1', images: ['docker.io/library/app:1.0.0', 'docker.io/library/other:2'] }])
  t.same(suggest(index, 'docker.io/library/app:1.0.1'), ['app:1.0.0'])
  t.equal(
    suggest(index, 'docker.io/library/app:1.0.1'),
    suggest(index, 'docker.io/library/app:1.0.1'),
    'the same answer, not a new ranking',
  )
  t.ok(Object.isFrozen(suggest(index, 'docker.io/library/app:1.0.1')), 'shared answers cannot be changed by a reader')
  index.upsertImages({
    nodeName: 'n1',
    images: ['docker.io/library/app:1.0.0', 'docker.io/library/app:1.0.2', 'docker.io/library/other:2'].map(
      runtimeImage,
    ),
    observedAt: NOW,
  })
  t.same(
    suggest(index, 'docker.io/library/app:1.0.1'),
    ['app:1.0.0', 'app:1.0.2'],
    'a new tag of the repository is seen at once',
  )
  t.same(suggest(index, 'docker.io/library/aps:1.0.0'), ['app:1.0.0'], 'a near-miss repository')
  index.upsertImages({
    nodeName: 'n1',
    images: ['docker.io/library/apt:1.0.0', 'docker.io/library/other:2'].map(runtimeImage),
    observedAt: NOW,
  })
  t.same(suggest(index, 'docker.io/library/aps:1.0.0'), ['apt:1.0.0'], 'near misses follow the set of repositories')
  t.same(
    suggest(index, 'docker.io/library/app:1.0.1'),
    ['apt:1.0.0'],
    'a repository that left no longer answers from its memo',
  )
})

t.test(
  'precedence: a fresh NodeImageSet is the truth for its node; Node.status.images only where there is none',
  async (t) => {
    const OLD = 'docker.io/library/present:1'
    // Every node's kubelet still reports present:1 in status.images (a cache, tens of seconds
    // old); the NodeImageSets say what the runtime holds now.
    const view = buildIndex([
      { name: 'fresh-without', labels: { role: 'fresh-without' }, images: [], statusImages: [OLD] },
      { name: 'fresh-with', labels: { role: 'fresh-with' }, images: [OLD], statusImages: [OLD] },
      { name: 'stale-without', labels: { role: 'stale-without' }, images: [], age: STALE_MS * 2, statusImages: [OLD] },
      { name: 'no-set', labels: { role: 'no-set' }, statusImages: [OLD] },
      { name: 'no-set-no-status', labels: { role: 'no-set-no-status' } },
    ])
    const table: Array<[string, Partial<Placement>, string, string]> = [
      [
        'fresh NodeImageSet without it: status.images does not outrank it',
        { nodeName: 'fresh-without' },
        'missing',
        'deny',
      ],
      ['fresh NodeImageSet with it', { nodeName: 'fresh-with' }, 'present', 'allow'],
      [
        'stale NodeImageSet without it: status.images proves presence',
        { nodeName: 'stale-without' },
        'present',
        'allow',
      ],
      ['no NodeImageSet: status.images proves presence', { nodeName: 'no-set' }, 'present', 'allow'],
      [
        'no NodeImageSet, not in status.images: unknown, never a denial',
        { nodeName: 'no-set-no-status' },
        'unknown',
        'warn',
      ],
      ['selected by label, same answer', { nodeSelector: { role: 'fresh-without' } }, 'missing', 'deny'],
    ]
    for (const [name, placement, reason, verdict] of table) {
      const d = decide(view, {
        subject,
        template: template([never('present:1')], placement),
        mode: 'enforce',
        now: NOW,
      })
      t.equal(d.findings[0]?.reason, reason, `${name}: reason`)
      t.equal(d.verdict, verdict, `${name}: verdict`)
    }
    const both = decide(view, {
      subject,
      template: template([never('present:1')], {
        requiredTerms: [{ matchExpressions: [{ key: 'role', operator: 'In', values: ['fresh-without', 'no-set'] }] }],
      }),
      mode: 'enforce',
      now: NOW,
    })
    t.match(
      both.findings[0],
      { reason: 'partial', present: { names: ['no-set'] }, missing: { names: ['fresh-without'] } },
      'each node by its own best source',
    )

    // The same node once its NodeImageSet goes stale: status.images counts again.
    const later = NOW + STALE_MS
    const d = decide(view, {
      subject,
      template: template([never('present:1')], { nodeName: 'fresh-without' }),
      mode: 'enforce',
      now: later,
    })
    t.equal(d.findings[0]?.reason, 'present', 'a stale list: the kubelet status is the best evidence left')
  },
)

// GKE Sandbox style: the RuntimeClass selects sandbox nodes and tolerates their taint. The
// RuntimeClass admission plugin (plugin/pkg/admission/runtimeclass/admission.go setScheduling)
// merges that into every pod; workload templates are judged as their pods will be.
t.test('RuntimeClass scheduling places workload templates as the plugin places their pods', async (t) => {
  const sandbox = buildIndex([
    { name: 'plain-1', images: [] },
    { name: 'plain-2', images: [] },
    {
      name: 'sandbox-1',
      labels: { sandbox: 'true' },
      taints: [{ key: 'sandbox', value: 'gvisor', effect: 'NoSchedule' }],
      images: [APP],
    },
  ])
  sandbox.upsertRuntimeClass({
    name: 'gvisor',
    handler: 'runsc',
    nodeSelector: { sandbox: 'true' },
    tolerations: [{ key: 'sandbox', operator: 'Equal', value: 'gvisor', effect: 'NoSchedule' }],
  })
  sandbox.setRuntimeClassesComplete(true)
  const dep = (
    runtimeClassName: string | undefined,
    placement: Partial<Placement> = {},
    extra: Partial<PodTemplateFacts> = {},
  ): PodTemplateFacts => ({
    ...template([never('myapp:1.0')], placement, { kind: 'Deployment', ...extra }),
    ...(runtimeClassName === undefined ? {} : { runtimeClassName }),
  })
  const s: Subject = { ...subject, kind: 'Deployment' }
  const go = (tpl: PodTemplateFacts, mergePods = false) =>
    decide(sandbox, { subject: s, template: tpl, mode: 'enforce', now: NOW, mergePods })

  t.equal(go(dep(undefined)).verdict, 'deny', 'without a RuntimeClass: only the plain nodes, which lack the image')
  let d = go(dep('gvisor'))
  t.equal(d.verdict, 'allow', 'gvisor pods land on the sandbox node, which has the image')
  t.same(d.findings[0]?.present.names, ['sandbox-1'])

  d = go(dep('kata'))
  t.equal(d.verdict, 'warn', 'a RuntimeClass that does not exist: a warning, never our denial')
  t.match(
    warningsFor(d, s)[0],
    /^RuntimeClass "kata" does not exist: the apiserver will reject the pods of Deployment default\/web \(pod rejected: RuntimeClass "kata" not found\)/,
  )

  d = go(dep('gvisor', { nodeSelector: { sandbox: 'false' } }))
  t.equal(d.verdict, 'warn', 'a nodeSelector conflict: its pods are rejected, so we only warn')
  t.match(
    warningsFor(d, s)[0],
    /conflict: runtimeClass.scheduling.nodeSelector\[sandbox\] = true; pod.spec.nodeSelector\[sandbox\] = false/,
  )

  const unknown = buildIndex([{ name: 'plain-1', images: [] }])
  d = decide(unknown, { subject: s, template: dep('gvisor'), mode: 'enforce', now: NOW })
  t.equal(d.verdict, 'warn', 'RuntimeClasses not known (list not available): never a denial')
  t.match(warningsFor(d, s)[0], /RuntimeClass "gvisor" is not in neverpull-guard's inventory/)
  const present = buildIndex([{ name: 'plain-1', images: [APP] }])
  t.equal(
    decide(present, { subject: s, template: dep('gvisor'), mode: 'enforce', now: NOW }).verdict,
    'warn',
    'unknown RuntimeClass is said even when the image is there',
  )

  // Pods arrive merged by the plugin; merging again could only go wrong.
  const pod = { ...dep('gvisor'), kind: 'Pod' }
  t.equal(go(pod).verdict, 'deny', 'an admitted Pod is judged as it arrives (already merged by the apiserver)')
  t.equal(go(pod, true).verdict, 'allow', 'an offline Pod manifest is merged like a template')

  // DaemonSet: the controller picks nodes from the template as written (NodeShouldRunDaemonPod).
  const ds = { ...dep('gvisor', { tolerations: daemonSetTolerations(false) }), kind: 'DaemonSet', perNode: true }
  d = go(ds)
  t.equal(
    d.findings[0]?.reason,
    'no-eligible-nodes',
    'the RuntimeClass toleration does not make the controller use the tainted sandbox node',
  )
  const tolerating = {
    ...dep('gvisor', {
      tolerations: [...daemonSetTolerations(false), { key: 'sandbox', operator: 'Exists' as const }],
    }),
    kind: 'DaemonSet',
    perNode: true,
  }
  t.equal(
    go(tolerating).verdict,
    'allow',
    'tolerating the taint itself, the DaemonSet runs on the sandbox node only (the selector merges)',
  )
})
