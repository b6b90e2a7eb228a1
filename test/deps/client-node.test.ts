// @kubernetes/client-node is most of the image's node_modules and costs tens of MiB of heap
// once imported. Only kubeconfig-based cluster access needs it (--kubeconfig, $KUBECONFIG,
// the tools, certs --patch-live); the agent and the webhook in a pod (service account), the
// offline tools and the webhook on a static inventory must never load it. Each path runs here as the real
// command, in a child process whose module resolutions are recorded by a loader hook.
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import t, { type Test } from 'tap'
import { ensureCertificates } from '../../src/certs/files.js'
import { containerdSkipReason, startContainerd } from '../helpers/containerd.js'
import { writeOciImage } from '../helpers/oci.js'
import { httpsFront, startFakeApiServer } from '../helpers/fake-apiserver.js'
import { localWebhookArgs } from '../helpers/webhook-args.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const LIBRARY = '@kubernetes/client-node'

// Runs in the loader thread: every resolution that lands in client-node is appended to a file.
const HOOK = `
import { appendFileSync } from 'node:fs'
let file
export function initialize(data) { file = data.file }
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context)
  if (r.url.includes('/node_modules/${LIBRARY}/')) appendFileSync(file, r.url + '\\n')
  return r
}
`
const PRELOAD = `import { register } from 'node:module'
register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOK)}`)}, import.meta.url, { data: { file: process.env.NPG_TRACE } })
`

const work = await mkdtemp(join(tmpdir(), 'npg-client-node-'))
t.teardown(() => rm(work, { recursive: true, force: true }))

const pod = join(work, 'pod.yaml')
await writeFile(
  pod,
  'apiVersion: v1\nkind: Pod\nmetadata: {name: typo, namespace: default}\nspec:\n  nodeName: node-a\n  containers:\n  - {name: typo, image: "example.invalid/neverpull-demo:1", imagePullPolicy: Never}\n',
)
const inventory = join(root, 'examples', 'inventory.yaml')
const noContainerd = await containerdSkipReason()

interface Run {
  code: number | null
  stdout: string
  stderr: string
  /** Files of client-node the process resolved, in order. */
  loaded: string[]
}

let runs = 0
/**
 * `neverpull-guard ARGS` as a child process. With `until`, the child is sent SIGTERM once its
 * stdout matches (a long-running command reached the state under test).
 */
async function cli(args: string[], options: { env?: Record<string, string>; until?: RegExp } = {}): Promise<Run> {
  const trace = join(work, `trace-${++runs}`)
  await writeFile(trace, '')
  // No inherited KUBECONFIG, KUBERNETES_SERVICE_HOST or NODE_OPTIONS: each path is only what its flags say.
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: work, NPG_TRACE: trace, ...options.env }
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      `data:text/javascript,${encodeURIComponent(PRELOAD)}`,
      join(root, 'src', 'cli.ts'),
      ...args,
    ],
    {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stdout = ''
  let stderr = ''
  // Not an assertion: a child that never gets there must not outlive the test.
  const guard = setTimeout(() => child.kill('SIGKILL'), 90_000)
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString()
    if (options.until !== undefined && options.until.test(stdout)) child.kill('SIGTERM')
  })
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)))
  clearTimeout(guard)
  const loaded = (await readFile(trace, 'utf8')).split('\n').filter((l) => l !== '')
  return { code, stdout, stderr, loaded }
}

const notLoaded = (t: Test, run: Run, what: string): void => {
  t.strictSame(
    run.loaded,
    [],
    `${what}: ${LIBRARY} is not loaded${run.loaded.length > 0 ? ` (first: ${relative(root, fileURLToPath(run.loaded[0] as string))})` : ''}`,
  )
}

t.test('the tracer sees client-node when a path does load it (check --kubeconfig)', async (t) => {
  const run = await cli(['check', '-f', pod, '--kubeconfig', join(work, 'no-such-kubeconfig')])
  t.not(run.code, 0, 'no such kubeconfig')
  t.match(run.stderr + run.stdout, /kubeconfig/, 'says which kubeconfig')
  t.ok(run.loaded.length > 0, `${LIBRARY} is loaded for a kubeconfig`)
})

t.test('check, where and explain on an inventory file never load it', async (t) => {
  const check = await cli(['check', '-f', pod, '--inventory-file', inventory])
  t.equal(check.code, 1, 'check: denied, exit 1')
  t.match(check.stdout + check.stderr, /denied/)
  notLoaded(t, check, 'check')
  const where = await cli(['where', 'example.invalid/neverpull-demo:1', '--inventory-file', inventory])
  t.equal(where.code, 0, 'where: exit 0', { stderr: where.stderr })
  notLoaded(t, where, 'where')
  const explain = await cli(['explain', 'pod', 'typo', '-f', pod, '--inventory-file', inventory])
  t.ok(explain.code === 0 || explain.code === 1, `explain: ran (exit ${explain.code})`, { stderr: explain.stderr })
  t.match(explain.stdout, /typo/)
  notLoaded(t, explain, 'explain')
})

t.test('certs without --patch-live never loads it', async (t) => {
  const out = join(work, 'certs')
  const run = await cli(['certs', '--out-dir', out, '--secret-manifest', join(out, 'secret.yaml')])
  t.equal(run.code, 0, 'certs: exit 0', { stderr: run.stderr })
  t.match(await readFile(join(out, 'secret.yaml'), 'utf8'), /kind: Secret/)
  notLoaded(t, run, 'certs')
})

t.test('the webhook on a static inventory never loads it', async (t) => {
  const dir = join(work, 'webhook-tls')
  const { paths } = await ensureCertificates({
    outDir: dir,
    service: 'neverpull-guard',
    namespace: 'neverpull-system',
    hosts: ['127.0.0.1'],
    days: 30,
    force: false,
    now: new Date(),
  })
  const run = await cli(
    ['webhook', ...localWebhookArgs({ tls: { cert: paths.cert, key: paths.key }, inventoryFile: inventory })],
    { until: /Server listening/ },
  )
  t.match(run.stdout, /Server listening/, 'it served')
  notLoaded(t, run, 'webhook --inventory-file')
})

/** A stand-in apiserver over HTTPS, trusted through the service account's ca.crt, as in a pod. */
async function podApiserver(t: Test): Promise<{ env: Record<string, string>; saDir: string; patches: () => number }> {
  const dir = join(work, `apiserver-${++runs}`)
  const { paths } = await ensureCertificates({
    outDir: dir,
    service: 'kubernetes',
    namespace: 'default',
    hosts: ['127.0.0.1'],
    days: 30,
    force: false,
    now: new Date(),
  })
  let patches = 0
  const server = createServer({ cert: await readFile(paths.cert), key: await readFile(paths.key) }, (req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'https://x').pathname
      res.setHeader('content-type', 'application/json')
      if (req.method === 'GET' && path === '/api/v1/nodes/node-a') {
        res.end(JSON.stringify({ kind: 'Node', apiVersion: 'v1', metadata: { name: 'node-a', uid: 'uid-1' } }))
      } else if (req.method === 'PATCH') {
        patches++
        res.end(body)
      } else {
        res.statusCode = 404
        res.end('{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}')
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((r) => server.close(() => r()))
  })
  const saDir = join(dir, 'serviceaccount')
  await mkdir(saDir)
  await writeFile(join(saDir, 'token'), 'token\n')
  await writeFile(join(saDir, 'ca.crt'), await readFile(paths.caCert))
  return {
    env: {
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String((server.address() as AddressInfo).port),
      NODE_NAME: 'node-a',
    },
    saDir,
    patches: () => patches,
  }
}

t.test('the webhook in a pod never loads it: watch synced, audit lease taken', async (t) => {
  // The in-process apiserver behind TLS, trusted through the service account's ca.crt.
  const fake = await startFakeApiServer()
  t.teardown(() => fake.close())
  fake.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' } })
  const dir = join(work, `webhook-pod-${++runs}`)
  const { paths } = await ensureCertificates({
    outDir: dir,
    service: 'kubernetes',
    namespace: 'default',
    hosts: ['127.0.0.1'],
    days: 30,
    force: false,
    now: new Date(),
  })
  const tokens: string[] = []
  const front = await httpsFront(
    fake.url,
    { cert: await readFile(paths.cert), key: await readFile(paths.key) },
    (req) => void tokens.push(req.headers.authorization ?? ''),
  )
  t.teardown(() => front.close())
  const saDir = join(dir, 'serviceaccount')
  await mkdir(saDir)
  await writeFile(join(saDir, 'token'), 'pod-token\n')
  await writeFile(join(saDir, 'ca.crt'), await readFile(paths.caCert))
  const run = await cli(
    [
      'webhook',
      ...localWebhookArgs({
        tls: { cert: paths.cert, key: paths.key },
        inventoryFile: null,
        args: ['--service-account-dir', saDir, '--audit-interval', '1h'],
      }),
    ],
    {
      env: {
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: String(front.port),
        POD_NAMESPACE: 'neverpull-system',
        POD_NAME: 'webhook-0',
      },
      until: /audit lease acquired/,
    },
  )
  t.match(run.stdout, /inventory synced/, 'it listed the cluster with the service account', { stderr: run.stderr })
  t.match(run.stdout, /audit lease acquired/, 'and took the audit lease')
  t.ok(tokens.length > 0 && tokens.every((h) => h === 'Bearer pod-token'), "every request carried the pod's token")
  t.match(fake.get('coordination.k8s.io/v1', 'Lease', 'neverpull-guard-audit', 'neverpull-system'), {
    spec: { holderIdentity: 'webhook-0' },
  })
  notLoaded(t, run, 'webhook in a pod')
})

t.test('the agent in a pod never loads it: startup and a failing runtime', async (t) => {
  const api = await podApiserver(t)
  const run = await cli(
    [
      'agent',
      '--service-account-dir',
      api.saDir,
      '--cri-endpoint',
      `unix://${join(work, 'no-such.sock')}`,
      '--interval',
      '200ms',
    ],
    {
      env: api.env,
      until: /cannot list images/,
    },
  )
  t.match(run.stdout, /agent starting/, 'it started with the service account')
  t.match(run.stdout, /cannot list images/, 'and ran a round')
  notLoaded(t, run, 'agent in a pod')
})

t.test(
  "the agent in a pod never loads it: publishing a real runtime's images",
  { skip: noContainerd ?? false },
  async (t) => {
    const ctrd = await startContainerd()
    t.teardown(() => ctrd.cleanup())
    const image = await writeOciImage(ctrd.dir, 'a.tar', { names: ['docker.io/neverpull/a:1'], content: 'a' })
    await ctrd.importImage(image.path)
    const api = await podApiserver(t)
    const run = await cli(
      ['agent', '--service-account-dir', api.saDir, '--cri-endpoint', ctrd.endpoint, '--interval', '200ms'],
      {
        env: api.env,
        until: /published image list/,
      },
    )
    t.match(run.stdout, /published image list/, 'it published', { stderr: run.stderr })
    t.ok(api.patches() > 0, 'the stand-in apiserver received the server-side apply')
    notLoaded(t, run, 'agent publishing in a pod')
  },
)

// ---------------------------------------------------------------- static imports

/**
 * The modules `from` loads before any of its code runs: static imports and re-exports,
 * followed through relative paths. `import type` is erased; `import { type X }` is not (with
 * verbatimModuleSyntax it still loads the module), so it counts.
 */
function staticClosure(roots: string[]): Map<string, string> {
  const seen = new Map<string, string>() // module -> the module that imported it
  const queue = [...roots]
  while (queue.length > 0) {
    const file = queue.shift() as string
    const text = readFileSync(file, 'utf8')
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm)) {
      if (m[1] !== undefined) continue
      const spec = m[2] as string
      if (!spec.startsWith('.')) {
        if (!seen.has(spec)) seen.set(spec, file)
        continue
      }
      const target = resolvePath(dirname(file), spec.replace(/\.js$/, '.ts'))
      if (seen.has(target)) continue
      seen.set(target, file)
      queue.push(target)
    }
  }
  return seen
}

t.test('no command reaches client-node through static imports', (t) => {
  // The CLI and what it imports on demand per command: each of those loads whole at the
  // start of its command, so its static imports must not reach client-node.
  // The bin (src/cli.ts) hands the process to the program (src/cli/main.ts), which imports each command.
  const cli = join(root, 'src', 'cli.ts')
  const program = join(root, 'src', 'cli', 'main.ts')
  const commands = [...readFileSync(program, 'utf8').matchAll(/import\(\s*['"](\.[^'"]+)['"]\s*\)/g)].map((m) =>
    resolvePath(dirname(program), (m[1] as string).replace(/\.js$/, '.ts')),
  )
  t.ok(
    commands.length >= 4 || readFileSync(cli, 'utf8').includes('commander'),
    `${commands.length} command modules imported on demand`,
  )
  const closure = staticClosure([cli, program, ...commands])
  t.ok(closure.size > 20, `${closure.size} modules load with the CLI and its commands`)
  const chain = (mod: string): string => {
    const out = [mod]
    let cur = closure.get(mod)
    while (cur !== undefined && out.length < 20) {
      out.push(relative(root, cur))
      cur = closure.get(cur)
    }
    return out.reverse().join(' -> ')
  }
  for (const mod of closure.keys()) {
    if (mod === LIBRARY || mod.startsWith(`${LIBRARY}/`)) t.fail(`statically imported: ${chain(mod)}`)
  }
  // Where it may be imported as a value at all: each such module is reached only through import().
  // None today: client-node is only imported by import() (src/kube/config.ts, certs --patch-live).
  const allowed = new Set<string>()
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((e) =>
      statSync(join(dir, e)).isDirectory() ? walk(join(dir, e)) : e.endsWith('.ts') ? [join(dir, e)] : [],
    )
  for (const file of walk(join(root, 'src'))) {
    const text = readFileSync(file, 'utf8')
    const valueImport = new RegExp(
      `^\\s*import\\s+(?!type\\s)[^;'"]*?from\\s+['"]${LIBRARY.replace('/', '\\/')}['"]`,
      'm',
    ).test(text)
    if (valueImport)
      t.ok(
        allowed.has(relative(root, file)),
        `${relative(root, file)} imports ${LIBRARY} statically (${allowed.size === 0 ? 'no module may' : `only ${[...allowed].join(', ')} may, being loaded on demand`})`,
      )
    if (allowed.has(relative(root, file)))
      t.notOk(closure.has(file), `${relative(root, file)} is not in the CLI's static closure`)
  }
  t.end()
})
