// The README's install, try, warn-mode and uninstall steps against the manifests as they
// render: every name a command uses exists where the command looks for it, every directory
// a command applies is a build, each directory's supported Kubernetes versions (the README's
// table and the kustomization's first line) fit the APIs it renders, and the order of the
// steps is the one that cannot block the cluster.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { DEV_NAMESPACE, DEV_SERVICE } from '../../src/certs/files.js'
import { SECRET_NAME } from '../../src/certs/manifests.js'
import { isObject, type K8sObject, render } from './render.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const readme = readFileSync(join(root, 'README.md'), 'utf8')

type Obj = Record<string, unknown>
const o = (v: unknown): Obj => (isObject(v) ? v : {})
const a = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])
const objs = (v: unknown): Obj[] => a(v).map(o)

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`)
  if (start < 0) throw new Error(`README has no "## ${title}" section`)
  const end = readme.indexOf('\n## ', start + 1)
  return readme.slice(start, end < 0 ? undefined : end)
}

const deploying = section('Deploying')

/** `manifests/overlays/pre-1.30/` and `manifests/overlays/pre-1.30` are one directory. */
const dirKey = (d: string): string => d.replace(/\/+$/, '')

// ---------------------------------------------------------------- the version table

interface Row {
  versions: string
  min: number
  max: number
  dir: string
}

function parseVersions(text: string): { min: number; max: number } | undefined {
  let m = /^1\.(\d+) and later$/.exec(text)
  if (m) return { min: Number(m[1]), max: Infinity }
  m = /^1\.(\d+) (?:to|and) 1\.(\d+)$/.exec(text)
  if (m) return { min: Number(m[1]), max: Number(m[2]) }
  return undefined
}

const rows: Row[] = []
for (const line of deploying.split('\n')) {
  const cells = line.split('|').map((c) => c.trim())
  if (cells.length < 4) continue
  const dir = /^`(manifests\/[^`]*)`$/.exec(cells[2] ?? '')?.[1]
  if (dir === undefined) continue
  const versions = (cells[1] ?? '').replace(/\*\*/g, '')
  const range = parseVersions(versions)
  if (range === undefined) throw new Error(`README table: cannot read the versions "${versions}" (write "1.N and later" or "1.N to 1.M")`)
  rows.push({ versions, dir: dirKey(dir), ...range })
}

const builds = new Map<string, K8sObject[]>(rows.map((r) => [r.dir, render(join(root, r.dir))]))
const buildOf = (dir: string): K8sObject[] => {
  const list = builds.get(dirKey(dir))
  if (list === undefined) throw new Error(`${dir} is not a directory of the README's version table`)
  return list
}
const versionRows = rows.filter((r) => /^\| \*\*/.test(deploying.split('\n').find((l) => l.includes(`\`${r.dir}`)) ?? ''))

t.test('the version table lists every ready-made directory, and some directory fits every supported version', (t) => {
  const overlays = readdirSync(join(root, 'manifests', 'overlays')).filter((d) => existsSync(join(root, 'manifests', 'overlays', d, 'kustomization.yaml')))
  const expected = ['manifests', ...overlays.map((d) => `manifests/overlays/${d}`)].sort()
  t.strictSame([...new Set(rows.map((r) => r.dir))].sort(), expected, 'README "Deploying" table rows: manifests/ and every overlay')
  t.ok(versionRows.length >= 3, 'the bold rows are the version choice')
  // Kubernetes 1.19 is the oldest version supported; 60 stands for "every later one".
  for (let minor = 19; minor <= 60; minor++) {
    t.ok(versionRows.some((r) => r.min <= minor && minor <= r.max), `a bold row covers 1.${minor}`)
  }
  for (let i = 0; i < versionRows.length; i++) {
    for (let j = i + 1; j < versionRows.length; j++) {
      const [x, y] = [versionRows[i] as Row, versionRows[j] as Row]
      t.ok(x.max < y.min || y.max < x.min, `${x.dir} and ${y.dir}: one answer per version`)
    }
  }
  t.end()
})

/** The Kubernetes versions a rendered build can be applied to, from the APIs it uses. */
function supported(list: K8sObject[]): { min: number; max: number; why: string[] } {
  let min = 16 // admissionregistration.k8s.io/v1 and apiextensions.k8s.io/v1
  let max = Infinity
  const why: string[] = []
  for (const x of list) {
    if (x.kind === 'PodDisruptionBudget' && x.apiVersion === 'policy/v1') {
      min = Math.max(min, 21)
      why.push('policy/v1 PodDisruptionBudget: 1.21+')
    }
    if (x.kind === 'PodDisruptionBudget' && x.apiVersion === 'policy/v1beta1') {
      max = Math.min(max, 24)
      why.push('policy/v1beta1 PodDisruptionBudget: removed in 1.25')
    }
    if (x.kind.endsWith('WebhookConfiguration') && objs(x['webhooks']).some((w) => w['matchConditions'] !== undefined)) {
      min = Math.max(min, 28)
      why.push('matchConditions: 1.28+ (beta, on by default; GA 1.30)')
    }
  }
  return { min, max, why }
}

t.test('each directory claims only versions whose APIs it renders', (t) => {
  for (const r of rows) {
    const s = supported(buildOf(r.dir))
    t.ok(r.min >= s.min && r.max <= s.max, `${r.dir}: README says ${r.versions}, its APIs allow 1.${s.min} to ${s.max === Infinity ? 'any' : `1.${s.max}`} (${s.why.join('; ')})`)
  }
  t.end()
})

t.test("each kustomization's first line names the README's versions for it", (t) => {
  for (const r of rows) {
    const first = readFileSync(join(root, r.dir, 'kustomization.yaml'), 'utf8').split('\n')[0] ?? ''
    t.ok(first.startsWith(`# Kubernetes ${r.versions}:`), `${r.dir}/kustomization.yaml starts with "# Kubernetes ${r.versions}:" (is "${first}")`)
  }
  t.end()
})

t.test('the errors the README and kustomizations quote are the ones the renders would cause', (t) => {
  const texts = [deploying, ...rows.map((r) => readFileSync(join(root, r.dir, 'kustomization.yaml'), 'utf8'))]
  const all = [...builds.values()].flat()
  let quoted = 0
  for (const text of texts) {
    for (const m of text.matchAll(/no matches for kind "(\w+)" in version "([^"]+)"/g)) {
      quoted++
      t.ok(all.some((x) => x.kind === m[1] && x.apiVersion === m[2]), `some directory renders ${m[2]} ${m[1]}`)
    }
    for (const m of text.matchAll(/unknown field "(?:webhooks\[0\]\.)?(\w+)"/g)) {
      quoted++
      t.ok(all.some((x) => objs(x['webhooks']).some((w) => w[m[1] as string] !== undefined)), `some webhook renders ${m[1]}`)
    }
  }
  t.ok(quoted >= 4, 'the errors are quoted')
  const [pdbV1, matchConditions] = [/no matches for kind "PodDisruptionBudget" in version "policy\/v1"/, /unknown field "matchConditions"/]
  t.match(deploying, pdbV1)
  t.match(deploying, matchConditions)
  t.end()
})

// ---------------------------------------------------------------- the commands

interface Command {
  line: string
  words: string[]
}

/** Shell lines of the ```sh blocks: after "$ " where a block shows output, else every line. */
function commands(text: string): Command[] {
  const out: Command[] = []
  for (const m of text.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const lines = (m[1] ?? '').split('\n')
    const prompted = lines.some((l) => l.startsWith('$ '))
    for (const raw of lines) {
      if (prompted && !raw.startsWith('$ ')) continue
      const line = raw.replace(/^\$ /, '').replace(/\s+#.*$/, '').trim()
      if (line === '' || line.startsWith('#')) continue
      out.push({ line, words: line.split(/\s+/).map((w) => w.replace(/^'(.*)'$/, '$1')) })
    }
  }
  return out
}

const cmds = commands(deploying)
const kubectl = (c: Command): string[] => {
  // The kubectl invocation of a line (the last one of a pipe).
  const parts = c.line.split('|').map((p) => p.trim())
  const k = [...parts].reverse().find((p) => p.startsWith('kubectl '))
  return k === undefined ? [] : k.split(/\s+/).map((w) => w.replace(/^'(.*)'$/, '$1'))
}
const flag = (words: string[], name: string): string | undefined => {
  const i = words.indexOf(name)
  if (i >= 0) return words[i + 1]
  const eq = words.find((w) => w.startsWith(`${name}=`))
  return eq?.slice(name.length + 1)
}
/** The directory a line builds: `kubectl ... -k DIR` or `kustomize build DIR | ...`. */
const dirOf = (c: Command): string | undefined => flag(kubectl(c), '-k') ?? /kustomize build (\S+)/.exec(c.line)?.[1]
const verbOf = (c: Command): string | undefined => kubectl(c)[1]

interface Selector {
  key: string
  op: '=' | '!='
  value: string
}
function parseSelector(s: string): Selector {
  const m = /^([\w./-]+)(!=|=)([\w.-]+)$/.exec(s)
  if (!m) throw new Error(`selector "${s}" is not key=value or key!=value`)
  return { key: m[1] as string, op: m[2] as '=' | '!=', value: m[3] as string }
}
const selects = (x: K8sObject, s: Selector): boolean => (x.metadata.labels?.[s.key] === s.value) === (s.op === '=')
const isRegistration = (x: K8sObject): boolean => x.kind === 'ValidatingWebhookConfiguration' || x.kind === 'MutatingWebhookConfiguration'

t.test('the README has the commands this test reads', (t) => {
  t.ok(cmds.length >= 20, `${cmds.length} commands in "Deploying"`)
  t.ok(cmds.some((c) => verbOf(c) === 'apply' && dirOf(c) !== undefined), 'an apply of a directory')
  t.ok(cmds.some((c) => verbOf(c) === 'delete' && dirOf(c) !== undefined), 'a delete of a directory')
  t.end()
})

t.test('every directory a command builds is a directory of the table', (t) => {
  for (const c of cmds) {
    const dir = dirOf(c)
    if (dir === undefined) continue
    t.ok(builds.has(dirKey(dir)), `${c.line}: ${dir}`)
  }
  t.end()
})

t.test('namespaces, workloads and webhook names in the commands exist in every build', (t) => {
  for (const c of cmds) {
    const k = kubectl(c)
    if (k.length === 0) continue
    const ns = flag(k, '-n') ?? flag(k, '--namespace')
    const dir = dirOf(c)
    const lists = dir !== undefined ? [buildOf(dir)] : [...builds.values()]
    for (const list of lists) {
      if (ns !== undefined) t.ok(list.some((x) => x.kind === 'Namespace' && x.metadata.name === ns), `${c.line}: namespace ${ns} is rendered`)
      const status = k.indexOf('status')
      if (k[1] === 'rollout' && status >= 0) {
        const [type, name] = (k[status + 1] ?? '').split('/')
        const kind = { deploy: 'Deployment', deployment: 'Deployment', daemonset: 'DaemonSet', ds: 'DaemonSet', statefulset: 'StatefulSet' }[type ?? '']
        t.ok(kind !== undefined, `${c.line}: a workload type`)
        t.ok(list.some((x) => x.kind === kind && x.metadata.name === name && x.metadata.namespace === ns), `${c.line}: ${kind} ${ns}/${name} is rendered`)
      }
      if (k[1] === 'get' && k[2] === 'nodeimagesets') {
        t.ok(list.some((x) => x.kind === 'CustomResourceDefinition' && o(o(x['spec'])['names'])['plural'] === 'nodeimagesets'), `${c.line}: the CRD's plural`)
      }
    }
    const patchLive = flag(c.words, '--patch-live')
    if (patchLive !== undefined) {
      for (const list of builds.values()) t.ok(list.some((x) => x.kind === 'ValidatingWebhookConfiguration' && x.metadata.name === patchLive), `${c.line}: ${patchLive} is rendered`)
    }
  }
  t.end()
})

t.test('the certificate the commands create is the one the webhook mounts and the apiserver dials', (t) => {
  const certs = cmds.filter((c) => c.words.includes('certs') && c.words.includes('dist/cli.js'))
  t.ok(certs.length > 0, 'certs commands')
  for (const c of certs) {
    t.equal(flag(c.words, '--service'), undefined, `${c.line}: the default service`)
    t.equal(flag(c.words, '--namespace'), undefined, `${c.line}: the default namespace`)
  }
  const secretFile = certs.map((c) => flag(c.words, '--secret-manifest')).find((f) => f !== undefined)
  t.ok(secretFile !== undefined, 'the Secret manifest is written')
  t.ok(cmds.some((c) => verbOf(c) === 'apply' && flag(kubectl(c), '-f') === secretFile), `the Secret manifest ${secretFile} is applied`)
  for (const [dir, list] of builds) {
    const deploy = list.find((x) => x.kind === 'Deployment' && x.metadata.name === 'neverpull-guard-webhook')
    const vols = objs(o(o(o(o(deploy)['spec'])['template'])['spec'])['volumes'])
    const tls = vols.find((v) => o(v['secret'])['secretName'] === SECRET_NAME)
    t.ok(tls !== undefined, `${dir}: the webhook mounts Secret ${SECRET_NAME}`)
    // Not optional: a pod created before the Secret waits in ContainerCreating (the kubelet
    // retries the mount) instead of starting without a certificate.
    t.not(o(tls?.['secret'])['optional'], true, `${dir}: the pods wait for the Secret`)
    // Nothing registered can refuse the Secret's creation: no rule names secrets, and the
    // namespace, labelled by the kustomization itself, is excluded on every version.
    const ns = list.find((x) => x.kind === 'Namespace' && x.metadata.name === DEV_NAMESPACE)
    for (const x of list.filter(isRegistration)) {
      for (const w of objs(x['webhooks'])) {
        const resources = objs(w['rules']).flatMap((r) => a(r['resources']))
        t.notOk(resources.includes('secrets') || resources.includes('*'), `${dir}: ${String(w['name'])} does not see Secrets`)
        const offByLabel = objs(o(w['namespaceSelector'])['matchExpressions']).some(
          (e) => e['operator'] === 'NotIn' && a(e['values']).includes(ns?.metadata.labels?.[String(e['key'])]),
        )
        t.ok(w['namespaceSelector'] === undefined || offByLabel, `${dir}: ${String(w['name'])} skips ${DEV_NAMESPACE} by its own label`)
      }
    }
    const svc = list.find((x) => x.kind === 'Service' && x.metadata.name === DEV_SERVICE && x.metadata.namespace === DEV_NAMESPACE)
    t.ok(svc !== undefined, `${dir}: Service ${DEV_NAMESPACE}/${DEV_SERVICE}, the name certs puts on the certificate`)
  }
  t.end()
})

t.test('the image the try step runs is the image the manifests deploy', (t) => {
  const runs = cmds.filter((c) => kubectl(c)[1] === 'run')
  t.ok(runs.length >= 2, 'kubectl run commands')
  const deploy = buildOf('manifests').find((x) => x.kind === 'Deployment') as K8sObject
  const image = String(o(objs(o(o(o(deploy['spec'])['template'])['spec'])['containers'])[0])['image'])
  const own = runs.filter((c) => (flag(c.words, '--image') ?? '').startsWith('neverpull-guard'))
  t.ok(own.length > 0, 'one runs neverpull-guard itself')
  for (const c of own) t.equal(flag(c.words, '--image'), image, `${c.line}: the deployed image`)
  for (const c of runs) t.equal(flag(c.words, '--image-pull-policy'), 'Never', `${c.line}: Never`)
  t.end()
})

t.test('the pod the try step runs with our image completes: its args are a command that exits 0', (t) => {
  const own = cmds.filter((c) => kubectl(c)[1] === 'run' && (flag(c.words, '--image') ?? '').startsWith('neverpull-guard'))
  for (const c of own) {
    t.equal(flag(c.words, '--restart'), 'Never', `${c.line}: one run, not a restart loop`)
    const args = c.words.slice(c.words.indexOf('--') + 1)
    t.ok(c.words.includes('--') && args.length > 0, `${c.line}: args for the image's entrypoint`)
    // The image's ENTRYPOINT is node dist/cli.js; the same program from source here.
    const out = execFileSync(process.execPath, ['--import', 'tsx', join(root, 'src', 'cli.ts'), ...args], { encoding: 'utf8', cwd: root })
    t.match(out, /neverpull-guard/, `${c.line}: prints ${out.trim()}`)
  }
  t.end()
})

t.test('namespace labels the commands set are the ones the webhook reads', (t) => {
  const modes = new Set(['enforce', 'warn', 'audit', 'off'])
  const labels = cmds.filter((c) => kubectl(c)[1] === 'label')
  t.ok(labels.length > 0, 'label commands')
  for (const list of builds.values()) {
    const hook = objs(list.find((x) => x.kind === 'ValidatingWebhookConfiguration')?.['webhooks'])[0]
    const keys = objs(o(hook?.['namespaceSelector'])['matchExpressions']).map((e) => e['key'])
    for (const c of labels) {
      const k = kubectl(c)
      t.equal(k[2], 'namespace', `${c.line}: labels a namespace`)
      const set = /^([\w./-]+)(?:=(\w+)|-)$/.exec(k[4] ?? '')
      t.ok(set !== null, `${c.line}: sets or removes one label`)
      t.ok(keys.includes(set?.[1]), `${c.line}: ${set?.[1]} is in the webhook's namespaceSelector`)
      if (set?.[2] !== undefined) t.ok(modes.has(set[2]), `${c.line}: ${set[2]} is a mode`)
    }
  }
  // The warn-mode step labels the namespace the try step used (kubectl run's default).
  t.ok(labels.some((c) => kubectl(c)[3] === 'default' && /=warn$/.test(kubectl(c)[4] ?? '')), 'warn mode on the namespace of the try step')
  t.notOk(cmds.some((c) => /kubectl create (namespace|ns) /.test(c.line)), 'the kustomization owns its namespace')
  t.end()
})

t.test('the registration label marks exactly the webhook configurations', (t) => {
  const selectors = cmds.map((c) => flag(kubectl(c), '-l')).filter((s): s is string => s !== undefined)
  t.ok(selectors.length > 0, 'commands select by label')
  for (const s of new Set(selectors)) {
    const sel = parseSelector(s)
    for (const [dir, list] of builds) {
      const chosen = list.filter((x) => selects(x, sel))
      const wanted = sel.op === '=' ? list.filter(isRegistration) : list.filter((x) => !isRegistration(x))
      t.strictSame(chosen.map((x) => `${x.kind}/${x.metadata.name}`), wanted.map((x) => `${x.kind}/${x.metadata.name}`), `${dir}: -l ${s}`)
      t.ok(chosen.length > 0, `${dir}: -l ${s} selects something`)
    }
  }
  t.end()
})

t.test('install: everything but the registration, the Secret, the rollouts, then the registration and its CA', (t) => {
  const installed = new Set(cmds.filter((c) => verbOf(c) === 'apply' && dirOf(c) !== undefined).map((c) => dirKey(dirOf(c) as string)))
  // manifests/ stands in for every 1.21+ directory ("put your directory in its place"); 1.19
  // and 1.20 differ in more than the directory, so they have their own commands.
  t.strictSame([...installed].sort(), ['manifests', 'manifests/overlays/pre-1.21'])
  for (const dir of installed) {
    const row = rows.find((r) => r.dir === dir) as Row
    const at = (pred: (c: Command) => boolean): number => cmds.findIndex((c) => dirOf(c) !== undefined && dirKey(dirOf(c) as string) === dir && pred(c))
    const first = at((c) => verbOf(c) === 'apply' && flag(kubectl(c), '-l') === 'neverpull.dev/registration!=true')
    const register = at((c) => verbOf(c) === 'apply' && flag(kubectl(c), '-l') === undefined)
    t.ok(first >= 0 && register > first, `${dir}: everything but the registration, then the registration`)
    if (first < 0 || register <= first) continue
    const between = cmds.slice(first + 1, register)
    t.ok(between.some((c) => verbOf(c) === 'apply' && flag(kubectl(c), '-f') !== undefined && /secret/.test(flag(kubectl(c), '-f') as string)), `${dir}: the Secret before the registration`)
    t.ok(between.some((c) => /rollout status deploy\/neverpull-guard-webhook/.test(c.line)), `${dir}: the webhook's rollout before the registration`)
    const after = cmds[register + 1]
    t.ok(after !== undefined && flag(after.words, '--patch-live') !== undefined, `${dir}: the CA right after the registration`)
    // The block starts after the previous directory's last command.
    let start = first
    while (start > 0 && dirOf(cmds[start - 1] as Command) === undefined) start--
    const kubeSystem = cmds.slice(start, register).some((c) => /kubectl label namespace kube-system neverpull\.dev\/mode=off/.test(c.line))
    t.equal(kubeSystem, row.min < 21, `${dir}: kube-system labelled before the registration exactly where kubernetes.io/metadata.name is missing`)
  }
  t.end()
})

t.test('uninstall: each version directory, the registration first, then the rest', (t) => {
  for (const r of versionRows) {
    const deletes = cmds.filter((c) => verbOf(c) === 'delete' && dirOf(c) !== undefined && dirKey(dirOf(c) as string) === r.dir)
    t.equal(deletes.length, 2, `${r.dir}: two deletes with the same directory as the install`)
    if (deletes.length !== 2) continue
    t.equal(flag(kubectl(deletes[0] as Command), '-l'), 'neverpull.dev/registration=true', `${r.dir}: the registration first`)
    t.ok(kubectl(deletes[1] as Command).includes('--ignore-not-found'), `${r.dir}: then the rest, the registration already gone`)
  }
  t.end()
})
