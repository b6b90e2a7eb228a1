import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { spawn } from 'node:child_process'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { NodeImageSet } from '../../src/api/types.js'
import { containerdSkipReason, startContainerd } from '../helpers/containerd.js'
import { writeOciImage } from '../helpers/oci.js'
import { daemonSetNodeOptions, podServiceAccount } from '../helpers/agent-pod.js'

// The agent as the DaemonSet starts it: a process of its own with the manifest's
// NODE_OPTIONS (a V8 without its JIT compilers, --jitless, for memory), in a pod's shape
// (service account, HTTPS to the apiserver), against a real containerd. Node.js refuses
// to start with a V8 flag it does not allow in NODE_OPTIONS, and --jitless takes away
// WebAssembly, so a dependency on either would only show here or in a cluster.

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

function run(
  args: string[],
  env: NodeJS.ProcessEnv,
): { exit: Promise<number | null>; stderr: () => string; kill: () => void } {
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return { exit, stderr: () => stderr, kill: () => child.kill('SIGTERM') }
}

const nodeOptions = await daemonSetNodeOptions()
const V8_JITLESS_NOTICE = 'Warning: disabling flag --expose_wasm due to conflicting flags'

t.test("Node.js starts with the DaemonSet's NODE_OPTIONS", async (t) => {
  const p = run(['-e', 'process.exitCode = 0'], { PATH: process.env['PATH'], NODE_OPTIONS: nodeOptions })
  t.equal(await p.exit, 0, p.stderr())
  t.notMatch(p.stderr(), /not allowed in NODE_OPTIONS/)
})

const skip = await containerdSkipReason()

t.test('the agent lists and publishes under those options, in a pod shape', { skip: skip ?? false }, async (t) => {
  const ctrd = await startContainerd()
  t.teardown(() => ctrd.cleanup())
  const image = await writeOciImage(ctrd.dir, 'a.tar', { names: ['docker.io/neverpull/a:1'], content: 'a' })
  await ctrd.importImage(image.path)

  const account = await podServiceAccount(ctrd.dir, 'agent-token')
  const sa = account.dir

  const specs: NodeImageSet[] = []
  const tokens = new Set<string>()
  const server = createServer({ cert: account.cert, key: account.key }, (req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      tokens.add(req.headers.authorization ?? '')
      const path = new URL(req.url ?? '/', 'https://x').pathname
      res.setHeader('content-type', 'application/json')
      if (req.method === 'GET' && path === '/api/v1/nodes/node-a') {
        res.end(JSON.stringify({ kind: 'Node', apiVersion: 'v1', metadata: { name: 'node-a', uid: 'uid-1' } }))
        return
      }
      if (req.method === 'PATCH') {
        if (!path.endsWith('/status')) specs.push(JSON.parse(body) as NodeImageSet)
        res.end(body)
        return
      }
      res.statusCode = 404
      res.end('{"kind":"Status","code":404,"message":"not found"}')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((r) => server.close(() => r()))
  })

  const agent = run(
    [
      '--import',
      'tsx',
      'src/cli.ts',
      'agent',
      '--node-name',
      'node-a',
      '--cri-endpoint',
      ctrd.endpoint,
      '--service-account-dir',
      sa,
      '--interval',
      '200ms',
      '--log-level',
      'warn',
    ],
    {
      PATH: process.env['PATH'],
      NODE_OPTIONS: nodeOptions,
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String((server.address() as AddressInfo).port),
    },
  )
  let exited = false
  void agent.exit.then(() => (exited = true))
  t.teardown(async () => {
    agent.kill()
    await agent.exit
  })
  // Not a speed target: a bound so a broken agent fails instead of hanging.
  const deadline = Date.now() + 60_000
  while (specs.length === 0 && !exited && Date.now() < deadline) await sleep(100)
  t.equal(exited, false, `the agent keeps running (stderr: ${agent.stderr()})`)
  t.same(
    specs[0]?.spec.images.map((i) => [i.id, i.repoTags]),
    [[image.configDigest, ['docker.io/neverpull/a:1']]],
    'it published what containerd holds, its name confirmed with ImageStatus',
  )
  t.same([...tokens], ['Bearer agent-token'], 'with the service account token')
  agent.kill()
  t.equal(await agent.exit, 0, 'and stops cleanly on SIGTERM')
  // V8's own notice that --jitless turns WebAssembly off, once at start (the DaemonSet
  // manifest says so too); nothing from the agent.
  const logged = agent
    .stderr()
    .split('\n')
    .filter((line) => line !== '' && line !== V8_JITLESS_NOTICE)
  t.same(logged, [], 'nothing logged at warn or above')
})
