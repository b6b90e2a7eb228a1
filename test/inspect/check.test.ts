import { spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'
import { checkObjects, exitCodeOf, renderText } from '../../src/inspect/check.js'
import { ManifestError, parseManifests } from '../../src/inspect/manifests.js'
import { exampleInventory, review, type FixtureObject } from '../helpers/fixtures.js'
import { checkPodReview } from '../../src/admission/pod-check.js'

const now = Date.now()
const inventory = exampleInventory(now)

function objectOf(name: string): FixtureObject {
  return review(name)['request'].object
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - {name: api, image: "registry.local:5000/team/api:1.5.0", imagePullPolicy: Never}
`
const pod = `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  containers:
  - {name: app, image: "myapp:dev", imagePullPolicy: Never}
  - {name: side, image: "nginx"}
`
const configMap = `apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data: {a: b}
`

t.test('check gives the webhook verdict and message, word for word', async (t) => {
  for (const name of ['deployment-update-image', 'statefulset-create', 'pod-create', 'daemonset-create']) {
    const obj = objectOf(name)
    const [result] = checkObjects([{ source: 'x.yaml', document: 1, object: obj }], {
      inventory,
      mode: 'enforce',
      namespace: 'default',
      now,
    }).results
    const body = review(name)
    body['request'].operation = 'CREATE'
    body['request'].oldObject = null
    const { reply } = checkPodReview(body, { inventory, mode: 'enforce', now })
    t.equal(result?.message, reply.response.status?.message, `${name}: message`)
    t.same(result?.warnings, reply.response.warnings ?? [], `${name}: warnings`)
  }
})

t.test('multi-document YAML, Lists, ignored kinds, namespaces', async (t) => {
  const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [objectOf('job-create')] })
  const objects = [
    ...parseManifests(`${deployment}---\n${pod}---\n${configMap}---\n`, 'app.yaml'),
    ...parseManifests(list, 'list.json'),
  ]
  const report = checkObjects(objects, { inventory, mode: 'enforce', namespace: 'team', now })
  t.equal(report.ignored, 1, 'the ConfigMap is ignored and counted')
  t.same(
    report.results.map((r) => [r.ref, r.namespace, r.verdict, r.document]),
    [
      ['deployment.apps/api', 'team', 'deny', 1],
      ['pod/web', 'shop', 'warn', 2],
      ['job.batch/migrate', 'default', 'warn', 1],
    ],
  )
  t.equal(exitCodeOf(report), 1)
  const text = renderText(report)
  t.match(
    text.stderr,
    /^Error from server \(Forbidden\): error when creating "app.yaml": admission webhook "pods.neverpull.dev" denied the request: Deployment team\/api: container "api": image "registry.local:5000\/team\/api:1.5.0"/m,
  )
  t.match(
    text.stderr,
    /^Warning: container "app": image "myapp:dev" \(imagePullPolicy: Never\) is on 1 of 2 eligible nodes/m,
  )
  t.match(text.stdout, /^pod\/web allowed with warnings \(app.yaml\)$/m)
  t.match(text.stdout, /^3 checked, 1 denied, 2 with warnings, 1 other objects ignored$/m)
})

t.test('an empty inventory never denies: unknown is a warning', async (t) => {
  const empty = new InventoryIndex({ staleAfterMs: 60_000 })
  const report = checkObjects(parseManifests(deployment, 'a.yaml'), {
    inventory: empty,
    mode: 'enforce',
    namespace: 'default',
    now,
  })
  t.equal(report.results[0]?.verdict, 'warn')
  t.match(report.results[0]?.warnings[0], /no node matches/)
  t.equal(exitCodeOf(report), 0)
})

t.test('unusable input is named by file and document', async (t) => {
  t.throws(() => parseManifests('a: [1, 2\n', 'bad.yaml'), ManifestError)
  t.throws(() => parseManifests(`${configMap}---\n- 1\n- 2\n`, 'list.yaml'), {
    message: /^list.yaml: document 2 is not a Kubernetes object \(got a list\)$/,
  })
  t.throws(() => parseManifests('foo: bar\n', 'x.yaml'), { message: /x.yaml: document 1 has no apiVersion and kind/ })
  t.same(parseManifests('---\n---\n', 'empty.yaml'), [], 'empty documents are skipped')
})

function cli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    encoding: 'utf8',
    input,
    env: { ...process.env, KUBECONFIG: '/nonexistent' },
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

t.test('the check command: files, directories, stdin, exit codes, JSON', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'neverpull-check-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await mkdir(join(dir, 'nested'))
  await writeFile(join(dir, 'deploy.yaml'), deployment)
  await writeFile(join(dir, 'nested', 'pod.yml'), pod)
  await writeFile(join(dir, 'notes.txt'), 'not yaml')
  await writeFile(join(dir, 'bad.yaml'), 'kind: [\n')
  const inv = ['--inventory-file', 'examples/inventory.yaml']

  let r = cli(['check', '-f', join(dir, 'nested'), ...inv])
  t.equal(r.code, 0, 'a warning alone is exit 0')
  t.match(r.stderr, /^Warning: /m)

  r = cli(['check', '-f', join(dir, 'deploy.yaml'), join(dir, 'nested'), ...inv, '-o', 'json'])
  t.equal(r.code, 1, 'a denial is exit 1')
  const json = JSON.parse(r.stdout) as { summary: unknown }
  t.same(json.summary, { checked: 2, denied: 1, warned: 1, allowed: 0, invalid: 0, ignored: 0 })

  r = cli(['check', '-f', '-', ...inv], deployment)
  t.equal(r.code, 1, 'stdin works')
  t.match(r.stderr, /error when creating "-"/)

  r = cli(['check', '-f', dir, ...inv])
  t.equal(r.code, 2, 'malformed YAML is exit 2')
  t.match(r.stderr, /^error: .*bad.yaml: document 1: /m)

  r = cli(['check', '-f', join(dir, 'missing.yaml'), ...inv])
  t.equal(r.code, 2)
  t.match(r.stderr, /missing.yaml: no such file or directory/)

  r = cli(['check', ...inv])
  t.equal(r.code, 2)
  t.match(r.stderr, /no manifests: give -f PATH/)

  r = cli(['check', '-f', join(dir, 'deploy.yaml'), '--mode', 'warn', ...inv])
  t.equal(r.code, 0, '--mode warn never fails the build')

  r = cli(['check', '-f', join(dir, 'deploy.yaml'), '--inventory-file', join(dir, 'bad.yaml')])
  t.equal(r.code, 2, 'an unusable inventory is exit 2')
  t.match(r.stderr, /bad.yaml: document 1/)
})

t.test('check, like the webhook, says where a steering namespace sends the pods', async (t) => {
  const objects = parseManifests(
    `apiVersion: apps/v1
kind: Deployment
metadata: {name: dev, namespace: steered}
spec:
  selector: {matchLabels: {app: dev}}
  template:
    metadata: {labels: {app: dev}}
    spec:
      containers:
      - {name: app, image: "myapp:dev", imagePullPolicy: Never}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: steered}
spec:
  containers:
  - {name: app, image: "myapp:dev", imagePullPolicy: Never}
`,
    'dev.yaml',
  )
  const view = exampleInventory(now)
  const plain = checkObjects(objects, { inventory: view, mode: 'enforce', namespace: 'default', now })
  for (const r of plain.results)
    t.match(
      r.warnings.join('\n'),
      /pods placed elsewhere fail with ErrImageNeverPull/,
      `${r.ref}: warned without steering`,
    )
  const notice =
    'container "app": image "myapp:dev" (imagePullPolicy: Never) is on 1 of 2 eligible nodes (node-a); this namespace steers its pods to that node (neverpull.dev/steer)'
  // The namespace label, as in an inventory snapshot with namespaces, or --steer for all.
  view.setNamespaceSteer('steered', true)
  const labelled = checkObjects(objects, { inventory: view, mode: 'enforce', namespace: 'default', now })
  for (const r of labelled.results)
    t.same(r.warnings, [notice], `${r.ref}: the notice (a Pod offline has not been steered yet)`)
  view.setNamespaceSteer('steered', undefined)
  const global = checkObjects(objects, {
    inventory: view,
    mode: 'enforce',
    namespace: 'default',
    now,
    steer: { global: true, maxNodes: 100 },
  })
  for (const r of global.results) t.same(r.warnings, [notice], `${r.ref}: --steer`)
})

// `check` sees manifests before the apiserver: RuntimeClasses among them count (kubectl apply
// would create them), and Pods are merged as the RuntimeClass admission plugin would
// (plugin/pkg/admission/runtimeclass/admission.go setScheduling).
t.test('RuntimeClasses in the manifests place the workloads that name them', async (t) => {
  const { addManifestRuntimeClasses } = await import('../../src/inspect/check.js')
  const index = exampleInventory(now)
  const text = `apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: gpu}
handler: nvidia
scheduling:
  nodeSelector: {accelerator: nvidia}
  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]
---
apiVersion: v1
kind: Pod
metadata: {name: train, namespace: default}
spec:
  runtimeClassName: gpu
  containers: [{name: train, image: "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04", imagePullPolicy: Never}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: train, namespace: default}
spec:
  selector: {matchLabels: {app: train}}
  template:
    metadata: {labels: {app: train}}
    spec:
      runtimeClassName: gpu
      containers: [{name: train, image: "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04", imagePullPolicy: Never}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: other, namespace: default}
spec:
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: other}}
    spec:
      runtimeClassName: missing
      containers: [{name: x, image: "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04", imagePullPolicy: Never}]
`
  const objects = parseManifests(text, 'gpu.yaml')
  t.equal(addManifestRuntimeClasses(objects, index), 1)
  const report = checkObjects(objects, { inventory: index, mode: 'enforce', namespace: 'default', now })
  t.same(
    report.results.map((r) => [r.ref, r.verdict]),
    [
      ['pod/train', 'allow'],
      ['deployment.apps/train', 'allow'],
      ['deployment.apps/other', 'warn'],
    ],
  )
  t.match(report.results[2]?.warnings[0], /RuntimeClass "missing" is not in neverpull-guard's inventory/)
  const without = checkObjects(parseManifests(text.split('---\n').slice(1).join('---\n'), 'gpu.yaml'), {
    inventory: exampleInventory(now),
    mode: 'enforce',
    namespace: 'default',
    now,
  })
  t.equal(without.results[1]?.verdict, 'warn', 'the RuntimeClass unknown: warned, never denied')
  t.throws(
    () =>
      addManifestRuntimeClasses(
        parseManifests(
          'apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: x}\nscheduling: 3\n',
          'bad.yaml',
        ),
        index,
      ),
    ManifestError,
  )
})
