// Checks what an apiserver would only reveal at install time, or worse at the first pod:
// shape, scoping, the CRD schema against real NodeImageSets, webhook registration, RBAC
// breadth, pod hardening, and that every overlay changes exactly what it claims to.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import t from 'tap'
import { parse, parseAllDocuments } from 'yaml'
import { toJsonSchema, type OpenApiSchema } from '../../src/api/openapi.js'
import type { NodeImageSet } from '../../src/api/types.js'
import { build, idOf, isObject, type K8sObject, readObjects, render } from './render.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const manifests = join(root, 'manifests')
const NS = 'neverpull-system'
// Every overlay there is, so a new one cannot be added without being built and compared.
const BUILDS = ['.', ...readdirSync(join(manifests, 'overlays')).sort().map((d) => `overlays/${d}`)]
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleBinding',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
])

type Obj = Record<string, unknown>
// Typed navigation through parsed YAML without a cast at every step.
const o = (v: unknown): Obj => (isObject(v) ? v : {})
const a = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])
const objs = (v: unknown): Obj[] => a(v).map(o)

const rendered = new Map<string, K8sObject[]>(BUILDS.map((b) => [b, render(join(manifests, b))]))
const get = (b: string): K8sObject[] => rendered.get(b) ?? []
const find = (list: K8sObject[], kind: string, name: string): Obj => {
  const hit = list.find((x) => x.kind === kind && x.metadata.name === name)
  if (hit === undefined) throw new Error(`${kind} ${name} not rendered`)
  return hit
}
const base = get('.')
const vwc = (list: K8sObject[]): Obj[] => objs(find(list, 'ValidatingWebhookConfiguration', 'neverpull-guard')['webhooks'])
const mwc = (list: K8sObject[]): Obj[] => objs(find(list, 'MutatingWebhookConfiguration', 'neverpull-guard')['webhooks'])
const deployment = find(base, 'Deployment', 'neverpull-guard-webhook')
const daemonset = find(base, 'DaemonSet', 'neverpull-guard-agent')
const podSpec = (w: Obj): Obj => o(o(o(w['spec'])['template'])['spec'])
const container = (w: Obj): Obj => o(objs(podSpec(w)['containers'])[0])

function yamlFiles(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir)) {
    const p = join(dir, e)
    if (statSync(p).isDirectory()) out.push(...yamlFiles(p))
    else if (/\.ya?ml$/.test(e)) out.push(p)
  }
  return out.sort()
}

t.test('every file explains itself and reads the same under YAML 1.1 (kubectl) and 1.2', async (t) => {
  for (const f of yamlFiles(manifests)) {
    const text = readFileSync(f, 'utf8')
    t.match(text, /^# \S/, `${relative(root, f)} starts with a header comment`)
    // sigs.k8s.io/yaml follows YAML 1.1: unquoted off/yes/0440 would become bool/octal.
    const v12 = parseAllDocuments(text).map((d) => d.toJS() as unknown)
    const v11 = parseAllDocuments(text, { version: '1.1' }).map((d) => d.toJS() as unknown)
    t.strictSame(v11, v12, `${relative(root, f)} has no YAML 1.1 surprises`)
  }
})

t.test('every build yields well-formed, correctly scoped, unique objects', async (t) => {
  for (const [b, list] of rendered) {
    t.ok(list.length > 0, `${b} renders objects`)
    const ids = new Set<string>()
    for (const x of list) {
      t.ok(typeof x.apiVersion === 'string' && x.apiVersion.length > 0, `${b}: apiVersion on ${x.kind}`)
      t.ok(typeof x.kind === 'string' && x.kind.length > 0, `${b}: kind`)
      t.ok(typeof x.metadata?.name === 'string' && x.metadata.name.length > 0, `${b}: metadata.name on ${x.kind}`)
      if (CLUSTER_SCOPED.has(x.kind)) t.equal(x.metadata.namespace, undefined, `${b}: ${idOf(x)} is cluster-scoped`)
      else t.equal(x.metadata.namespace, NS, `${b}: ${idOf(x)} is in ${NS}`)
      t.notOk(ids.has(idOf(x)), `${b}: ${idOf(x)} is unique`)
      ids.add(idOf(x))
      t.equal(x.metadata.labels?.['app.kubernetes.io/name'], 'neverpull-guard', `${b}: ${idOf(x)} is labelled`)
    }
    for (const x of list) {
      for (const c of [...objs(podSpec(x)['containers'])]) {
        t.equal(c['image'], 'neverpull-guard:dev', `${b}: ${x.kind} image set by kustomize images`)
        t.equal(c['imagePullPolicy'], 'IfNotPresent', `${b}: ${x.kind} imagePullPolicy`)
      }
    }
  }
})

t.test('namespace opts itself out of the webhook', async (t) => {
  const ns = find(base, 'Namespace', NS)
  const labels = o(o(ns['metadata'])['labels'])
  t.equal(labels['neverpull.dev/mode'], 'off')
  t.equal(labels['pod-security.kubernetes.io/enforce'], 'privileged', 'the agent needs hostPath')
})

// ---------------------------------------------------------------- CRD

const crd = find(base, 'CustomResourceDefinition', 'nodeimagesets.neverpull.dev')
const crdSpec = o(crd['spec'])
const version = o(objs(crdSpec['versions'])[0])
const schema = o(o(version['schema'])['openAPIV3Schema'])

t.test('CRD names, scope, subresource and printer columns', async (t) => {
  t.equal(crdSpec['group'], 'neverpull.dev')
  t.equal(crdSpec['scope'], 'Cluster')
  t.strictSame(o(crdSpec['names'])['shortNames'], ['nis'])
  t.equal(o(crdSpec['names'])['plural'], 'nodeimagesets')
  t.equal(o(crdSpec['names'])['kind'], 'NodeImageSet')
  t.equal(objs(crdSpec['versions']).length, 1)
  t.equal(version['name'], 'v1alpha1')
  t.equal(version['served'], true)
  t.equal(version['storage'], true)
  t.strictSame(o(version['subresources'])['status'], {})
  const cols = new Map(objs(version['additionalPrinterColumns']).map((c) => [c['name'], c]))
  const expect: Array<[string, string, string]> = [
    ['Node', '.spec.nodeName', 'string'],
    ['Runtime', '.spec.runtime.name', 'string'],
    ['Images', '.status.imageCount', 'integer'],
    ['Observed', '.status.observedTime', 'date'],
  ]
  for (const [name, path, type] of expect) {
    t.equal(cols.get(name)?.['jsonPath'], path, `${name} column path`)
    t.equal(cols.get(name)?.['type'], type, `${name} column type`)
  }
  // A column on a field the schema lacks is always empty, because the field is pruned.
  for (const c of cols.values()) {
    const path = String(c['jsonPath'])
    if (path.startsWith('.metadata.')) continue
    let node: Obj = schema
    for (const part of path.slice(1).split('.')) node = o(o(node['properties'])[part])
    t.ok(Object.keys(node).length > 0, `column ${String(c['name'])} (${path}) is in the schema`)
    if (c['type'] === 'integer') t.equal(node['type'], 'integer', `${path} is an integer`)
    if (c['type'] === 'date') t.equal(node['format'], 'date-time', `${path} is a date-time`)
  }
})

function structuralProblems(node: Obj, path: string, out: string[]): void {
  const typed =
    typeof node['type'] === 'string' ||
    node['x-kubernetes-int-or-string'] === true ||
    node['x-kubernetes-preserve-unknown-fields'] === true
  if (!typed) out.push(`${path}: no type`)
  if (node['additionalProperties'] !== undefined && node['properties'] !== undefined) out.push(`${path}: properties and additionalProperties`)
  for (const k of ['$ref', 'definitions', 'dependencies', 'patternProperties']) if (k in node) out.push(`${path}: ${k} is not allowed`)
  for (const [k, v] of Object.entries(o(node['properties']))) structuralProblems(o(v), `${path}.${k}`, out)
  if (node['items'] !== undefined) structuralProblems(o(node['items']), `${path}[]`, out)
  const lt = node['x-kubernetes-list-type']
  if (lt !== undefined) {
    if (node['type'] !== 'array') out.push(`${path}: list-type on a non-array`)
    if (lt === 'map' && a(node['x-kubernetes-list-map-keys']).length === 0) out.push(`${path}: map list without keys`)
    for (const key of a(node['x-kubernetes-list-map-keys'])) {
      if (!a(o(node['items'])['required']).includes(key)) out.push(`${path}: map key ${String(key)} is not required`)
    }
  }
}

t.test('CRD schema is structural', async (t) => {
  const problems: string[] = []
  structuralProblems(schema, '', problems)
  t.strictSame(problems, [])
  t.equal(o(o(schema['properties'])['metadata'])['type'], 'object')
  t.strictSame(Object.keys(o(o(schema['properties'])['metadata'])), ['type'], 'metadata is left to the apiserver')
})

// The apiserver prunes undeclared fields instead of rejecting them; additionalProperties:
// false makes that silent loss a validation failure here.
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true })
ajv.addFormat('date-time', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/)
const validateNis = ajv.compile(toJsonSchema(schema as unknown as OpenApiSchema, { closed: true }))

type NodeImageSetWithCount = NodeImageSet & { status?: NodeImageSet['status'] & { imageCount?: number } }

const containerdNode: NodeImageSetWithCount = {
  apiVersion: 'neverpull.dev/v1alpha1',
  kind: 'NodeImageSet',
  metadata: {
    name: 'worker-1',
    ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: 'worker-1', uid: '2f1c8a4e-8a0e-4d0b-9d7e-3c1f0b6a9e11', controller: true }],
  },
  spec: {
    nodeName: 'worker-1',
    runtime: { name: 'containerd', version: 'v1.7.22', endpoint: 'unix:///run/containerd/containerd.sock' },
    images: [
      {
        id: 'sha256:a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6',
        repoTags: ['docker.io/library/nginx:1.27'],
        repoDigests: ['docker.io/library/nginx@sha256:0a399eb16751829e1af26fea27b20c3ec28d7ab1fb72182879dcae1cca21206a'],
        size: 72_950_421,
        pinned: false,
      },
      // Imported from a tarball with no registry: tags but no digests.
      { id: 'sha256:5f8a2c8f6b0e1c4d2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091', repoTags: ['localhost/app:dev'], repoDigests: [], size: 1024, pinned: false },
      // The sandbox image is pinned so the kubelet never garbage-collects it.
      { id: 'sha256:e6f1816883972d4be47bd48879a08919b96afcd344132622e4d444987919323c', repoTags: ['registry.k8s.io/pause:3.10'], repoDigests: [], size: 320_368, pinned: true },
    ],
  },
  status: {
    observedTime: '2026-11-21T05:33:00Z',
    imageCount: 3,
    conditions: [{ type: 'Ready', status: 'True', reason: 'Listed', message: 'listed 3 images', lastTransitionTime: '2026-11-21T05:00:00Z' }],
  },
}

t.test('CRD schema accepts NodeImageSets as the agent writes them', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['containerd node', containerdNode],
    ['empty node, no status yet', { ...containerdNode, spec: { nodeName: 'n', images: [] }, status: undefined }],
    ['size above int64 as a decimal string', { ...containerdNode, spec: { ...containerdNode.spec, images: [{ id: 'sha256:x', repoTags: [], repoDigests: [], size: '18446744073709551615', pinned: false }] } }],
    ['cri-o node', { ...containerdNode, spec: { ...containerdNode.spec, runtime: { name: 'cri-o', version: '1.31.1', endpoint: 'unix:///var/run/crio/crio.sock' } } }],
  ]
  for (const [name, doc] of cases) {
    const clean = JSON.parse(JSON.stringify(doc)) as unknown
    t.ok(validateNis(clean), `${name}: ${ajv.errorsText(validateNis.errors)}`)
  }
  // Files under examples/ (written by others) must fit too.
  const exampleDir = join(root, 'examples')
  const examples = existsSync(exampleDir)
    ? yamlFiles(exampleDir).flatMap((f) =>
        readObjects(f)
          .flatMap((x) => (x.kind === 'List' ? objs((x as unknown as Obj)['items']) : [x as unknown as Obj]))
          .filter((x) => x['kind'] === 'NodeImageSet')
          .map((x) => [f, x] as const),
      )
    : []
  if (examples.length === 0) t.comment('no NodeImageSet under examples/ yet')
  for (const [f, x] of examples) t.ok(validateNis(x), `${relative(root, f)}: ${ajv.errorsText(validateNis.errors)}`)
})

t.test('CRD schema rejects what would be lost or wrong', async (t) => {
  const spec = containerdNode.spec
  const bad: Array<[string, unknown]> = [
    ['no images list', { ...containerdNode, spec: { nodeName: 'n' } }],
    ['no nodeName', { ...containerdNode, spec: { images: [] } }],
    ['image without id', { ...containerdNode, spec: { ...spec, images: [{ repoTags: [] }] } }],
    ['size as boolean', { ...containerdNode, spec: { ...spec, images: [{ id: 'x', size: true }] } }],
    ['misspelled field (would be pruned)', { ...containerdNode, spec: { ...spec, imgs: [] } }],
    ['negative imageCount', { ...containerdNode, status: { imageCount: -1 } }],
    ['condition status outside True/False/Unknown', { ...containerdNode, status: { conditions: [{ type: 'Ready', status: 'Yes' }] } }],
    ['observedTime not RFC 3339', { ...containerdNode, status: { observedTime: 'yesterday' } }],
  ]
  for (const [name, doc] of bad) t.notOk(validateNis(JSON.parse(JSON.stringify(doc))), name)
})

// ---------------------------------------------------------------- webhooks

const POD_CARRIERS: Array<[string, string]> = [
  ['', 'pods'],
  ['', 'pods/ephemeralcontainers'],
  ['', 'replicationcontrollers'],
  ['', 'podtemplates'],
  ['apps', 'deployments'],
  ['apps', 'replicasets'],
  ['apps', 'statefulsets'],
  ['apps', 'daemonsets'],
  ['batch', 'jobs'],
  ['batch', 'cronjobs'],
]

function covers(w: Obj, group: string, resource: string, op: string): boolean {
  return objs(w['rules']).some(
    (r) =>
      a(r['apiGroups']).includes(group) &&
      a(r['apiVersions']).includes('v1') === (group !== 'neverpull.dev') &&
      a(r['resources']).includes(resource) &&
      a(r['operations']).includes(op),
  )
}

t.test('webhook registration', async (t) => {
  for (const [b, list] of rendered) {
    const hooks = vwc(list)
    t.strictSame(hooks.map((w) => w['name']), ['pods.neverpull.dev', 'nodeimagesets.neverpull.dev'], `${b}: webhook names`)
    for (const w of hooks) {
      t.equal(w['sideEffects'], 'None', `${b}: ${String(w['name'])} sideEffects`)
      t.strictSame(w['admissionReviewVersions'], ['v1'], `${b}: admissionReviewVersions`)
      const timeout = Number(w['timeoutSeconds'])
      t.ok(timeout >= 1 && timeout <= 30, `${b}: timeoutSeconds ${timeout} in 1..30`)
      t.equal(w['matchPolicy'], 'Equivalent')
      const svc = o(o(w['clientConfig'])['service'])
      t.equal(svc['name'], 'neverpull-guard')
      t.equal(svc['namespace'], NS)
      t.equal(svc['port'], 443)
      t.equal(o(w['clientConfig'])['caBundle'], undefined, `${b}: no caBundle, so re-applying never wipes the patched one`)
      for (const r of objs(w['rules'])) t.notOk(a(r['resources']).includes('*') || a(r['apiGroups']).includes('*'), 'no wildcard rules')
    }
    const [pods, nis] = hooks as [Obj, Obj]
    t.equal(o(o(pods['clientConfig'])['service'])['path'], '/validate')
    t.equal(o(o(nis['clientConfig'])['service'])['path'], '/validate-nodeimageset')
    for (const [g, r] of POD_CARRIERS) {
      for (const op of ['CREATE', 'UPDATE']) t.ok(covers(pods, g, r, op), `${b}: ${g || 'core'}/${r} ${op}`)
    }
    for (const r of ['nodeimagesets', 'nodeimagesets/status']) {
      for (const op of ['CREATE', 'UPDATE']) t.ok(covers(nis, 'neverpull.dev', r, op), `${b}: ${r} ${op}`)
    }
    t.notOk(objs(pods['rules']).some((r) => a(r['operations']).includes('DELETE')), 'DELETE not registered (object would be null)')
    t.equal(nis['namespaceSelector'], undefined, 'NodeImageSets are cluster-scoped')
    t.equal(nis['failurePolicy'], 'Fail', `${b}: inventory writes fail closed`)
    const sel = objs(o(pods['namespaceSelector'])['matchExpressions'])
    t.ok(
      sel.some((e) => e['key'] === 'kubernetes.io/metadata.name' && e['operator'] === 'NotIn' && a(e['values']).includes('kube-system') && a(e['values']).includes(NS)),
      `${b}: kube-system and ${NS} excluded by name`,
    )
    t.ok(sel.some((e) => e['key'] === 'neverpull.dev/mode' && e['operator'] === 'NotIn' && a(e['values']).includes('off')), `${b}: mode=off excluded`)
  }
  // The Service's 443 leads to the container's --port.
  const svc = find(base, 'Service', 'neverpull-guard')
  const https = objs(o(svc['spec'])['ports']).find((p) => p['port'] === 443)
  const cport = objs(container(deployment)['ports']).find((p) => p['name'] === https?.['targetPort'])
  t.equal(cport?.['containerPort'], 8443)
  t.ok(a(container(deployment)['args']).includes('--port=8443'))
  t.strictSame(o(svc['spec'])['selector'], o(o(o(deployment['spec'])['template'])['metadata'])['labels'])
})

const matchExpr = String(o(objs(vwc(base)[0]?.['matchConditions'])[0])['expression'])

t.test('steering registration: pods CREATE only, failing open, reinvoked, routed like the validating webhook', async (t) => {
  for (const [b, list] of rendered) {
    const hooks = mwc(list)
    t.strictSame(
      hooks.map((w) => w['name']),
      ['steer.neverpull.dev'],
      `${b}: one mutating webhook`,
    )
    const [steer] = hooks as [Obj]
    const [pods] = vwc(list) as [Obj]
    t.equal(steer['failurePolicy'], 'Ignore', `${b}: a failure leaves the pod as it was`)
    t.equal(steer['reinvocationPolicy'], 'IfNeeded', `${b}: called again after other mutations`)
    t.equal(steer['sideEffects'], 'None')
    t.strictSame(steer['admissionReviewVersions'], ['v1'])
    t.equal(steer['matchPolicy'], 'Equivalent')
    const timeout = Number(steer['timeoutSeconds'])
    t.ok(timeout >= 1 && timeout <= 30, `${b}: timeoutSeconds in 1..30`)
    const svc = o(o(steer['clientConfig'])['service'])
    t.strictSame(svc, { ...o(o(pods['clientConfig'])['service']), path: '/mutate' }, `${b}: the same Service, path /mutate`)
    t.equal(o(steer['clientConfig'])['caBundle'], undefined, `${b}: no caBundle in the manifests`)
    t.strictSame(steer['rules'], [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }], `${b}: pods CREATE only`)
    t.strictSame(steer['matchConditions'], pods['matchConditions'], `${b}: the validating webhook's matchConditions`)
    const own = objs(o(steer['namespaceSelector'])['matchExpressions'])
    const theirs = objs(o(pods['namespaceSelector'])['matchExpressions'])
    t.strictSame(own.slice(0, theirs.length), theirs, `${b}: the validating webhook's namespace exclusions`)
    t.strictSame(own.slice(theirs.length), [{ key: 'neverpull.dev/steer', operator: 'NotIn', values: ['false'] }], `${b}: and opted-out namespaces`)
    const cfg = find(list, 'MutatingWebhookConfiguration', 'neverpull-guard')
    t.equal(cfg['apiVersion'], 'admissionregistration.k8s.io/v1', 'served from 1.16: every supported cluster')
    t.equal(o(o(cfg['metadata'])['labels'])['neverpull.dev/registration'], 'true', `${b}: registered last, removed first`)
  }
})

t.test('matchConditions (default build)', async (t) => {
  const [pods, nis] = vwc(base) as [Obj, Obj]
  t.equal(pods['failurePolicy'], 'Fail')
  const conds = objs(pods['matchConditions'])
  t.ok(conds.length >= 1 && conds.length <= 64, 'between 1 and 64 conditions')
  t.equal(new Set(conds.map((c) => c['name'])).size, conds.length, 'names unique')
  t.equal(nis['matchConditions'], undefined)
  // Every spec the expression reads must be reached through has() first.
  for (const path of [
    'object.spec.containers',
    'object.spec.initContainers',
    'object.spec.ephemeralContainers',
    'object.spec.template.spec.containers',
    'object.spec.template.spec.initContainers',
    'object.spec.jobTemplate.spec.template.spec.containers',
    'object.spec.jobTemplate.spec.template.spec.initContainers',
    'object.template.spec.containers',
    'object.template.spec.initContainers',
  ]) {
    t.ok(matchExpr.includes(`has(${path}) && ${path}.exists(c, has(c.imagePullPolicy) && c.imagePullPolicy == 'Never')`), `guards ${path}`)
    const parts = path.split('.')
    for (let i = 2; i < parts.length; i++) t.ok(matchExpr.includes(`has(${parts.slice(0, i).join('.')})`), `guards ${parts.slice(0, i).join('.')}`)
  }
  // Image volumes (spec.volumes[].image.pullPolicy) are routed too, wherever a pod spec lives.
  for (const spec of ['object.spec', 'object.spec.template.spec', 'object.spec.jobTemplate.spec.template.spec', 'object.template.spec']) {
    t.ok(
      matchExpr.includes(`has(${spec}.volumes) && ${spec}.volumes.exists(v, has(v.image) && has(v.image.pullPolicy) && v.image.pullPolicy == 'Never')`),
      `guards ${spec}.volumes`,
    )
  }
  let depth = 0
  for (const ch of matchExpr) {
    depth += ch === '(' ? 1 : ch === ')' ? -1 : 0
    if (depth < 0) break
  }
  t.equal(depth, 0, 'parentheses balance')
})

// Optional: evaluate the expression with a JavaScript CEL implementation when one is
// installed (not a project dependency). The module name is a variable so that tsc does not
// require it.
const CEL_MODULE = '@marcbachmann/cel-js'
const evaluate = await import(CEL_MODULE).then(
  (m: { evaluate?: (expr: string, ctx: Obj) => unknown }) => m.evaluate,
  () => undefined,
)

t.test(
  'matchConditions evaluate as intended',
  { skip: evaluate === undefined ? `${CEL_MODULE} is not installed (npm i -D ${CEL_MODULE} to evaluate the CEL)` : false },
  async (t) => {
    if (evaluate === undefined) return
    const c = (p?: string): Obj => ({ name: 'c', image: 'x:1', ...(p === undefined ? {} : { imagePullPolicy: p }) })
    const cases: Array<[string, Obj, boolean]> = [
      ['Pod with Never', { spec: { containers: [c('IfNotPresent'), c('Never')] } }, true],
      ['Pod init container Never', { spec: { containers: [c('Always')], initContainers: [c('Never')] } }, true],
      ['Pod ephemeral container Never', { spec: { containers: [c('Always')], ephemeralContainers: [c('Never')] } }, true],
      ['Pod without Never', { spec: { containers: [c('IfNotPresent'), c()] } }, false],
      ['Deployment with Never', { spec: { template: { spec: { containers: [c('Never')] } } } }, true],
      ['Deployment init Never', { spec: { template: { spec: { containers: [c()], initContainers: [c('Never')] } } } }, true],
      ['Deployment without Never', { spec: { template: { spec: { containers: [c('Always')] } } } }, false],
      ['ReplicationController without template', { spec: { replicas: 0 } }, false],
      ['CronJob with Never', { spec: { jobTemplate: { spec: { template: { spec: { containers: [c('Never')] } } } } } }, true],
      ['CronJob without Never', { spec: { jobTemplate: { spec: { template: { spec: { containers: [c()] } } } } } }, false],
      ['CronJob with partial jobTemplate', { spec: { jobTemplate: {} } }, false],
      ['CronJob whose jobTemplate has no template', { spec: { jobTemplate: { spec: {} } } }, false],
      ['workload whose template has no spec', { spec: { template: { metadata: {} } } }, false],
      ['PodTemplate whose template has no spec', { template: { metadata: {} } }, false],
      ['PodTemplate with Never', { template: { spec: { containers: [c('Never')] } } }, true],
      ['PodTemplate without Never', { template: { spec: { containers: [c('Always')] } } }, false],
      ['object without spec', { metadata: { name: 'x' } }, false],
      // Image volumes with pullPolicy: Never need their image on the node like a container.
      ['Pod with an image volume pullPolicy Never', { spec: { containers: [c('Always')], volumes: [{ name: 'v', image: { reference: 'x:1', pullPolicy: 'Never' } }] } }, true],
      ['Pod with an image volume IfNotPresent', { spec: { containers: [c('Always')], volumes: [{ name: 'v', image: { reference: 'x:1', pullPolicy: 'IfNotPresent' } }] } }, false],
      ['Pod with an image volume without pullPolicy', { spec: { containers: [c()], volumes: [{ name: 'v', image: { reference: 'x:1' } }] } }, false],
      ['Pod with other volumes', { spec: { containers: [c()], volumes: [{ name: 'v', emptyDir: {} }, { name: 'w', configMap: { name: 'x' } }] } }, false],
      ['Deployment with an image volume Never', { spec: { template: { spec: { containers: [c()], volumes: [{ name: 'v', emptyDir: {} }, { name: 'm', image: { reference: 'm:1', pullPolicy: 'Never' } }] } } } }, true],
      ['CronJob with an image volume Never', { spec: { jobTemplate: { spec: { template: { spec: { containers: [c()], volumes: [{ name: 'm', image: { reference: 'm:1', pullPolicy: 'Never' } }] } } } } } }, true],
      ['PodTemplate with an image volume Never', { template: { spec: { containers: [c()], volumes: [{ name: 'm', image: { reference: 'm:1', pullPolicy: 'Never' } }] } } }, true],
    ]
    for (const [name, object, want] of cases) t.equal(evaluate(matchExpr, { object }), want, name)
  },
)

function withoutMatchConditions(list: K8sObject[]): K8sObject[] {
  return list.map((x) =>
    x.kind === 'ValidatingWebhookConfiguration' || x.kind === 'MutatingWebhookConfiguration'
      ? ({ ...x, webhooks: objs((x as unknown as Obj)['webhooks']).map(({ matchConditions: _m, ...w }) => w) })
      : x,
  )
}

t.test('pre-1.30 overlay only drops matchConditions', async (t) => {
  const list = get('overlays/pre-1.30')
  for (const w of [...vwc(list), ...mwc(list)]) t.equal(w['matchConditions'], undefined, `${String(w['name'])}: no matchConditions`)
  t.strictSame(list, withoutMatchConditions(base))
})

t.test('pre-1.21 overlay also serves the PodDisruptionBudget as policy/v1beta1', async (t) => {
  const list = get('overlays/pre-1.21')
  for (const w of [...vwc(list), ...mwc(list)]) t.equal(w['matchConditions'], undefined)
  const pdbs = list.filter((x) => x.kind === 'PodDisruptionBudget')
  t.strictSame(pdbs.map((x) => x.apiVersion), ['policy/v1beta1'])
  const v1 = find(base, 'PodDisruptionBudget', 'neverpull-guard-webhook')
  t.strictSame(o(pdbs[0] as unknown)['spec'], v1['spec'], 'same budget')
})

t.test('failure-ignore overlay flips only the pod webhook to Ignore', async (t) => {
  const list = get('overlays/failure-ignore')
  const [pods, nis] = vwc(list) as [Obj, Obj]
  t.equal(pods['failurePolicy'], 'Ignore')
  t.equal(nis['failurePolicy'], 'Fail')
  const back = list.map((x) =>
    x.kind === 'ValidatingWebhookConfiguration'
      ? ({ ...x, webhooks: vwc(list).map((w, i) => (i === 0 ? { ...w, failurePolicy: 'Fail' } : w)) })
      : x,
  )
  t.strictSame(back, base, 'nothing else changes')
})

t.test('cert-manager overlay issues the serving certificate and injects the CA', async (t) => {
  const list = get('overlays/cert-manager')
  const cfg = find(list, 'ValidatingWebhookConfiguration', 'neverpull-guard')
  const inject = o(o(cfg['metadata'])['annotations'])['cert-manager.io/inject-ca-from']
  t.equal(inject, `${NS}/neverpull-guard-tls`)
  const mutating = find(list, 'MutatingWebhookConfiguration', 'neverpull-guard')
  t.equal(o(o(mutating['metadata'])['annotations'])['cert-manager.io/inject-ca-from'], `${NS}/neverpull-guard-tls`, 'the steering webhook too')
  const serving = find(list, 'Certificate', 'neverpull-guard-tls')
  const sspec = o(serving['spec'])
  const tlsVolume = objs(podSpec(deployment)['volumes']).find((v) => v['name'] === 'tls')
  t.equal(sspec['secretName'], o(tlsVolume?.['secret'])['secretName'], 'writes the Secret the webhook mounts')
  t.ok(a(sspec['dnsNames']).includes(`neverpull-guard.${NS}.svc`), 'names the Service as the apiserver dials it')
  t.ok(a(sspec['usages']).includes('server auth'))
  // issuerRef chain: serving -> CA issuer -> CA certificate -> self-signed issuer.
  const caIssuer = find(list, 'Issuer', String(o(sspec['issuerRef'])['name']))
  const caCert = objs(list as unknown[]).find((x) => x['kind'] === 'Certificate' && o(x['spec'])['secretName'] === o(o(caIssuer['spec'])['ca'])['secretName'])
  t.equal(o(caCert?.['spec'])['isCA'], true, 'the CA issuer signs with a CA certificate')
  const root = find(list, 'Issuer', String(o(o(caCert?.['spec'])['issuerRef'])['name']))
  t.strictSame(o(root['spec'])['selfSigned'], {})
  for (const x of list.filter((x) => x.apiVersion.startsWith('cert-manager.io/'))) t.equal(x.apiVersion, 'cert-manager.io/v1')
  t.equal(list.length, base.length + 4, 'adds the two issuers and two certificates')
})

// ---------------------------------------------------------------- RBAC

const FORBIDDEN_VERBS = new Set(['*', 'escalate', 'bind', 'impersonate', 'deletecollection'])

function rulesOf(list: K8sObject[], kind: string, name: string): Obj[] {
  return objs(find(list, kind, name)['rules'])
}

function flatten(rules: Obj[]): string[] {
  const out: string[] = []
  for (const r of rules) {
    for (const g of a(r['apiGroups'])) for (const res of a(r['resources'])) for (const v of a(r['verbs'])) {
      const names = a(r['resourceNames'])
      out.push(`${String(g)}/${String(res)}:${String(v)}${names.length > 0 ? `[${names.join(',')}]` : ''}`)
    }
  }
  return out.sort()
}

t.test('monitoring overlay adds scrape targets, rules and the dashboard, and nothing else', async (t) => {
  const list = get('overlays/monitoring')
  const added = list.filter((x) => !base.some((y) => idOf(y) === idOf(x)))
  t.strictSame(added.map((x) => `${x.kind}/${x.metadata.name}`).sort(), [
    'ConfigMap/neverpull-guard-dashboard',
    'PodMonitor/neverpull-guard-agent',
    'PrometheusRule/neverpull-guard',
    'ServiceMonitor/neverpull-guard-webhook',
  ])
  for (const x of base) t.strictSame(list.find((y) => idOf(y) === idOf(x)), x, `${idOf(x)} unchanged`)
  const service = find(base, 'Service', 'neverpull-guard')
  const sm = o(find(list, 'ServiceMonitor', 'neverpull-guard-webhook')['spec'])
  const serviceLabels = o(o(service['metadata'])['labels'])
  for (const [k, v] of Object.entries(o(o(sm['selector'])['matchLabels']))) t.equal(serviceLabels[k], v, `ServiceMonitor selects the Service by ${k}`)
  const endpoint = o(objs(sm['endpoints'])[0])
  t.ok(objs(o(service['spec'])['ports']).some((p) => p['name'] === endpoint['port']), 'ServiceMonitor scrapes a port the Service names')
  t.equal(endpoint['honorLabels'], true, 'the denials counter keeps its namespace label')
  const pm = o(find(list, 'PodMonitor', 'neverpull-guard-agent')['spec'])
  const podLabels = o(o(o(o(daemonset['spec'])['template'])['metadata'])['labels'])
  for (const [k, v] of Object.entries(o(o(pm['selector'])['matchLabels']))) t.equal(podLabels[k], v, `PodMonitor selects the agent pods by ${k}`)
  const pe = o(objs(pm['podMetricsEndpoints'])[0])
  t.ok(objs(container(daemonset)['ports']).some((p) => p['name'] === pe['port']), 'PodMonitor scrapes a port the agent names')
  t.ok(objs(pe['relabelings']).some((r) => a(r['sourceLabels']).includes('__meta_kubernetes_pod_node_name') && r['targetLabel'] === 'node'), 'agent series get a node label')
  const cm = find(list, 'ConfigMap', 'neverpull-guard-dashboard')
  t.equal(o(o(cm['metadata'])['labels'])['grafana_dashboard'], '1', 'Grafana sidecar label')
  const json = readFileSync(join(manifests, 'components', 'monitoring', 'dashboard.json'), 'utf8')
  t.equal(o(cm['data'])['dashboard.json'], json, 'the ConfigMap carries dashboard.json as it is')
  t.doesNotThrow(() => {
    JSON.parse(json)
  }, 'dashboard.json is JSON')
})

t.test('RBAC is least privilege', async (t) => {
  for (const x of base.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
    for (const r of objs((x as unknown as Obj)['rules'])) {
      for (const field of ['apiGroups', 'resources', 'verbs']) t.notOk(a(r[field]).includes('*'), `${idOf(x)}: no * in ${field}`)
      for (const v of a(r['verbs'])) t.notOk(FORBIDDEN_VERBS.has(String(v)), `${idOf(x)}: no ${String(v)}`)
      t.notOk(a(r['resources']).some((res) => String(res).startsWith('secrets')), `${idOf(x)}: no secrets`)
      t.equal(r['nonResourceURLs'], undefined)
    }
  }
  t.strictSame(flatten(rulesOf(base, 'ClusterRole', 'neverpull-guard-agent')), [
    '/nodes:get',
    'neverpull.dev/nodeimagesets/status:create',
    'neverpull.dev/nodeimagesets/status:get',
    'neverpull.dev/nodeimagesets/status:patch',
    'neverpull.dev/nodeimagesets:create',
    'neverpull.dev/nodeimagesets:get',
    'neverpull.dev/nodeimagesets:patch',
  ])
  const webhook = flatten(rulesOf(base, 'ClusterRole', 'neverpull-guard-webhook'))
  const writes = webhook.filter((r) => !/:(get|list|watch)$/.test(r))
  t.strictSame(writes, ['/events:create', '/events:patch', 'events.k8s.io/events:create', 'events.k8s.io/events:patch'], 'webhook writes only events cluster-wide')
  for (const need of ['/nodes:watch', '/namespaces:watch', 'neverpull.dev/nodeimagesets:watch', '/pods:watch', 'apps/daemonsets:list', 'batch/cronjobs:watch']) {
    t.ok(webhook.includes(need), `webhook can ${need}`)
  }
  t.notOk(webhook.some((r) => r.includes('nodeimagesets') && /:(create|patch|update|delete)$/.test(r)), 'webhook never writes inventory')
  t.strictSame(flatten(rulesOf(base, 'Role', 'neverpull-guard-webhook-leader')), [
    'coordination.k8s.io/leases:create',
    'coordination.k8s.io/leases:get[neverpull-guard-audit]',
    'coordination.k8s.io/leases:patch[neverpull-guard-audit]',
    'coordination.k8s.io/leases:update[neverpull-guard-audit]',
  ])
  for (const x of base.filter((x) => x.kind.endsWith('Binding'))) {
    const b = x as unknown as Obj
    const ref = o(b['roleRef'])
    find(base, String(ref['kind']), String(ref['name']))
    for (const s of objs(b['subjects'])) {
      t.equal(s['kind'], 'ServiceAccount')
      t.equal(s['namespace'], NS)
      find(base, 'ServiceAccount', String(s['name']))
    }
  }
  t.equal(podSpec(deployment)['serviceAccountName'], 'neverpull-guard-webhook')
  t.equal(podSpec(daemonset)['serviceAccountName'], 'neverpull-guard-agent')
})

// ---------------------------------------------------------------- workloads

t.test('webhook Deployment is hardened and highly available', async (t) => {
  const spec = o(deployment['spec'])
  const pod = podSpec(deployment)
  const c = container(deployment)
  const labels = o(o(o(spec['template'])['metadata'])['labels'])
  t.equal(spec['replicas'], 3)
  t.equal(o(o(spec['strategy'])['rollingUpdate'])['maxUnavailable'], 0, 'rollouts never drop below 3')
  const pdb = o(find(base, 'PodDisruptionBudget', 'neverpull-guard-webhook')['spec'])
  t.ok(pdb['maxUnavailable'] === 1 || pdb['minAvailable'] === 2, 'budget keeps two')
  t.strictSame(o(pdb['selector'])['matchLabels'], labels, 'PDB selects the webhook pods')
  const anti = objs(o(o(pod['affinity'])['podAntiAffinity'])['preferredDuringSchedulingIgnoredDuringExecution'])
  t.ok(anti.some((x) => o(x['podAffinityTerm'])['topologyKey'] === 'kubernetes.io/hostname'), 'anti-affinity by hostname')
  t.ok(objs(pod['topologySpreadConstraints']).length > 0, 'topology spread')
  for (const tsc of objs(pod['topologySpreadConstraints'])) t.strictSame(o(tsc['labelSelector'])['matchLabels'], labels)
  t.equal(pod['priorityClassName'], 'system-cluster-critical')
  const psc = o(pod['securityContext'])
  t.equal(psc['runAsNonRoot'], true)
  t.ok(Number(psc['runAsUser']) > 0, 'fixed non-root uid')
  t.equal(o(psc['seccompProfile'])['type'], 'RuntimeDefault')
  const sc = o(c['securityContext'])
  t.equal(sc['readOnlyRootFilesystem'], true)
  t.equal(sc['allowPrivilegeEscalation'], false)
  t.strictSame(o(sc['capabilities'])['drop'], ['ALL'])
  t.notOk(sc['privileged'])
  const res = o(c['resources'])
  t.ok(o(res['requests'])['cpu'] && o(res['requests'])['memory'], 'requests')
  t.ok(o(res['limits'])['memory'], 'memory limit')
  const args = a(c['args']).map(String)
  t.equal(args[0], 'webhook')
  const metrics = objs(c['ports']).find((p) => p['name'] === 'metrics')
  t.equal(metrics?.['containerPort'], 9090)
  t.ok(args.includes(`--metrics-port=${String(metrics?.['containerPort'])}`))
  t.strictSame(o(o(c['readinessProbe'])['httpGet']), { path: '/readyz', port: 'metrics' })
  t.strictSame(o(o(c['livenessProbe'])['httpGet']), { path: '/healthz', port: 'metrics' })
  const mount = objs(c['volumeMounts']).find((m) => m['name'] === 'tls')
  t.equal(mount?.['readOnly'], true)
  for (const flag of ['--tls-cert=', '--tls-key=']) {
    const file = args.find((x) => x.startsWith(flag))?.slice(flag.length) ?? ''
    t.equal(dirname(file), mount?.['mountPath'], `${flag} points into the mounted secret`)
  }
  const vol = objs(pod['volumes']).find((v) => v['name'] === 'tls')
  t.equal(o(vol?.['secret'])['secretName'], 'neverpull-guard-tls')
  const grace = Number(pod['terminationGracePeriodSeconds'])
  t.ok(grace >= 20 && grace <= 60, 'grace period about 30 s')
  const preStop = a(o(o(o(c['lifecycle'])['preStop'])['exec'])['command']).map(String)
  const wait = Number(/setTimeout\([^,]+,\s*(\d+)\)/.exec(preStop.join(' '))?.[1] ?? NaN) / 1000
  t.ok(wait > 0 && wait < grace, 'preStop waits, and less than the grace period')
})

t.test('agent DaemonSet runs everywhere, unprivileged', async (t) => {
  const pod = podSpec(daemonset)
  const c = container(daemonset)
  t.ok(objs(pod['tolerations']).some((x) => x['operator'] === 'Exists' && x['key'] === undefined && x['effect'] === undefined), 'tolerates every taint')
  t.equal(pod['priorityClassName'], 'system-node-critical')
  for (const k of ['hostNetwork', 'hostPID', 'hostIPC']) t.notOk(pod[k], `no ${k}`)
  const sc = o(c['securityContext'])
  t.equal(sc['privileged'], false)
  t.equal(sc['allowPrivilegeEscalation'], false)
  t.equal(sc['readOnlyRootFilesystem'], true)
  t.strictSame(o(sc['capabilities'])['drop'], ['ALL'])
  t.notOk(o(sc['capabilities'])['add'], 'adds no capability')
  t.equal(o(o(pod['securityContext'])['seccompProfile'])['type'], 'RuntimeDefault')
  const env = objs(c['env']).find((e) => e['name'] === 'NODE_NAME')
  t.equal(o(o(env?.['valueFrom'])['fieldRef'])['fieldPath'], 'spec.nodeName')
  t.equal(a(c['args'])[0], 'agent')
  const res = o(c['resources'])
  t.ok(o(res['requests'])['cpu'] && o(res['requests'])['memory'] && o(res['limits'])['memory'], 'small requests and a memory limit')
  const hostPaths = objs(pod['volumes']).filter((v) => v['hostPath'] !== undefined)
  t.strictSame(hostPaths.map((v) => o(v['hostPath'])['path']), ['/run/containerd'], 'only the containerd socket directory')
  for (const m of objs(c['volumeMounts'])) t.equal(m['readOnly'], true, `${String(m['mountPath'])} read-only`)
})

t.test('CRI components swap the socket mount and name the endpoint', async (t) => {
  const cases: Array<[string, string, string, string]> = [
    ['cri-o', '/var/run/crio', 'Directory', 'unix:///var/run/crio/crio.sock'],
    ['cri-dockerd', '/var/run/cri-dockerd.sock', 'Socket', 'unix:///var/run/cri-dockerd.sock'],
  ]
  for (const [component, path, type, endpoint] of cases) {
    const list = build({ resources: ['base'], components: [`components/${component}`] }, manifests)
    const ds = find(list, 'DaemonSet', 'neverpull-guard-agent')
    const vols = objs(podSpec(ds)['volumes'])
    // CRI-O also needs the host's registries.conf and drop-ins (short names, issue 10 item 2).
    const conf = component === 'cri-o' ? [{ path: '/etc/containers', type: 'DirectoryOrCreate' }] : []
    t.strictSame(vols.map((v) => v['hostPath']), [{ path, type }, ...conf], `${component}: host path`)
    const mounts = objs(container(ds)['volumeMounts'])
    const confMount = component === 'cri-o' ? [{ name: 'containers-conf', mountPath: '/etc/containers', readOnly: true }] : []
    t.strictSame(mounts, [{ name: 'cri-socket-dir', mountPath: path, readOnly: true }, ...confMount], `${component}: mounted at the same path, read-only`)
    t.ok(a(container(ds)['args']).includes(`--cri-endpoint=${endpoint}`), `${component}: endpoint`)
  }
})

t.test('the image-fs component mounts the runtime directory read-only under /host and says so', async (t) => {
  const list = build({ resources: ['base'], components: ['components/image-fs'] }, manifests)
  const ds = find(list, 'DaemonSet', 'neverpull-guard-agent')
  const vols = objs(podSpec(ds)['volumes'])
  t.strictSame(vols.map((v) => o(v['hostPath'])['path']), ['/run/containerd', '/var/lib/containerd'])
  const mounts = objs(container(ds)['volumeMounts'])
  t.strictSame(mounts[1], { name: 'image-fs', mountPath: '/host/var/lib/containerd', readOnly: true })
  t.ok(a(container(ds)['args']).includes('--host-root=/host'))
})

t.test('NetworkPolicy opens the webhook port to all and metrics to monitoring only', async (t) => {
  const np = o(find(base, 'NetworkPolicy', 'neverpull-guard-webhook')['spec'])
  t.strictSame(o(np['podSelector'])['matchLabels'], o(o(o(o(deployment['spec'])['template'])['metadata'])['labels']))
  t.strictSame(np['policyTypes'], ['Ingress'])
  const rules = objs(np['ingress'])
  for (const r of rules) t.ok(objs(r['ports']).length > 0, 'every rule names its ports')
  const open = rules.filter((r) => r['from'] === undefined)
  t.strictSame(open.flatMap((r) => objs(r['ports']).map((p) => p['port'])), [8443], 'only 8443 is open to any source')
  const metricsRule = rules.find((r) => objs(r['ports']).some((p) => p['port'] === 9090))
  t.ok(objs(metricsRule?.['from']).every((f) => f['namespaceSelector'] !== undefined && f['ipBlock'] === undefined), 'metrics from labelled namespaces')
  const agent = o(find(base, 'NetworkPolicy', 'neverpull-guard-agent')['spec'])
  t.strictSame(o(agent['podSelector'])['matchLabels'], o(o(o(o(daemonset['spec'])['template'])['metadata'])['labels']))
  t.strictSame(agent['policyTypes'], ['Ingress'])
  const agentRules = objs(agent['ingress'])
  t.strictSame(agentRules.flatMap((r) => objs(r['ports']).map((p) => p['port'])), [9090], 'the agent accepts only its metrics port')
  for (const r of agentRules) {
    t.strictSame(objs(r['from']), [{ namespaceSelector: { matchLabels: { 'neverpull.dev/metrics-scraper': 'true' } } }], 'and only from labelled namespaces')
  }
  const agentPort = objs(container(daemonset)['ports']).find((p) => p['name'] === 'metrics')
  t.equal(agentPort?.['containerPort'], 9090, 'the agent names its metrics port')
  t.ok(a(container(daemonset)['args']).includes('--metrics-port=9090'), 'and serves metrics there')
})

// ---------------------------------------------------------------- image

t.test('Dockerfile and manifests agree', async (t) => {
  const docker = readFileSync(join(root, 'Dockerfile'), 'utf8')
  const froms = [...docker.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1])
  t.equal(froms[froms.length - 1], 'gcr.io/distroless/nodejs20-debian12:nonroot', 'distroless runtime')
  const entry = /^ENTRYPOINT\s+(\[.*\])$/m.exec(docker)?.[1]
  const entrypoint = (entry === undefined ? [] : JSON.parse(entry)) as string[]
  t.strictSame(entrypoint, ['/nodejs/bin/node', '/app/dist/cli.js'])
  t.match(docker, /^CMD \["webhook"\]$/m)
  t.match(docker, /^USER 65532:65532$/m)
  t.match(docker, /npm ci --omit=dev/)
  t.match(docker, /npm run build/)
  // preStop runs node itself (no shell in distroless): the same binary as the entrypoint.
  const preStop = a(o(o(o(container(deployment)['lifecycle'])['preStop'])['exec'])['command'])
  t.equal(preStop[0], entrypoint[0])
  t.equal(o(o(podSpec(deployment)['securityContext']))['runAsUser'], 65532, 'same uid as the image')
  const pkg = parse(readFileSync(join(root, 'package.json'), 'utf8')) as { files?: string[] }
  for (const dir of pkg.files ?? []) t.match(docker, new RegExp(`COPY .*\\b${dir}\\b`), `image carries ${dir}/`)
  const ignore = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim())
  for (const e of ['node_modules', 'dist', 'certs', '.git', 'test']) t.ok(ignore.includes(e), `.dockerignore excludes ${e}`)
})

// ---------------------------------------------------------------- real kustomize

function kustomizeTool(): { cmd: string; args: string[]; why?: string } {
  const has = (cmd: string, args: string[]): string | undefined => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    } catch {
      return undefined
    }
  }
  const standalone = has('kustomize', ['version'])
  if (standalone !== undefined) return { cmd: 'kustomize', args: ['build'] }
  const kubectl = has('kubectl', ['version', '--client', '-o', 'json'])
  if (kubectl === undefined) return { cmd: '', args: [], why: 'neither kustomize nor kubectl is on PATH' }
  const v = /"kustomizeVersion":\s*"v(\d+)/.exec(kubectl)?.[1]
  if (v === undefined || Number(v) < 4) {
    return { cmd: '', args: [], why: `kubectl embeds kustomize ${v === undefined ? '< v4' : `v${v}`}; components need v4+ (kubectl 1.21+)` }
  }
  return { cmd: 'kubectl', args: ['kustomize'] }
}

const tool = kustomizeTool()

t.test('the real kustomize renders the same objects', { skip: tool.why ?? false }, async (t) => {
  for (const b of BUILDS) {
    const out = execFileSync(tool.cmd, [...tool.args, join(manifests, b)], { encoding: 'utf8', maxBuffer: 16 << 20 })
    const theirs = parseAllDocuments(out).map((d) => d.toJS() as K8sObject)
    const byId = (list: K8sObject[]): Map<string, K8sObject> => new Map(list.map((x) => [idOf(x), x]))
    const mine = byId(get(b))
    t.strictSame([...byId(theirs).keys()].sort(), [...mine.keys()].sort(), `${b}: same objects (${tool.cmd})`)
    for (const x of theirs) t.strictSame(x, mine.get(idOf(x)), `${b}: ${idOf(x)} identical`)
  }
})
