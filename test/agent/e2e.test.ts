import t from 'tap'
import { EventEmitter } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { stringify as toYaml } from 'yaml'
import { runAgent } from '../../src/agent/command.js'
import type { NodeImageSet } from '../../src/api/types.js'
import { containerdSkipReason, startContainerd } from '../helpers/containerd.js'
import { writeOciImage } from '../helpers/oci.js'

// The whole agent as `neverpull-guard agent` runs it: real containerd over CRI, real
// client-node against a stand-in apiserver, flags, kubeconfig file, SIGTERM.

const skip = await containerdSkipReason()

t.test('agent command end to end', { skip: skip ?? false }, async (t) => {
  const ctrd = await startContainerd()
  t.teardown(() => ctrd.cleanup())
  const a = await writeOciImage(ctrd.dir, 'a.tar', { names: ['docker.io/neverpull/a:1'], content: 'a' })
  const b = await writeOciImage(ctrd.dir, 'b.tar', { names: ['docker.io/neverpull/b:1'], content: 'b' })
  await ctrd.importImage(a.path)

  const specs: NodeImageSet[] = []
  const statuses: NodeImageSet[] = []
  const waiters: Array<() => void> = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname
      res.setHeader('content-type', 'application/json')
      if (req.method === 'GET' && path === '/api/v1/nodes/node-a') {
        res.end(JSON.stringify({ kind: 'Node', apiVersion: 'v1', metadata: { name: 'node-a', uid: 'uid-1' } }))
        return
      }
      if (req.method === 'PATCH' && req.headers['content-type'] === 'application/apply-patch+yaml') {
        const obj = JSON.parse(body) as NodeImageSet
        ;(path.endsWith('/status') ? statuses : specs).push(obj)
        waiters.splice(0).forEach((w) => w())
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
  const kubeconfig = join(ctrd.dir, 'kubeconfig')
  await writeFile(
    kubeconfig,
    toYaml({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'c',
          cluster: {
            server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
            'insecure-skip-tls-verify': true,
          },
        },
      ],
      users: [{ name: 'u', user: { token: 'tok' } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'c',
    }),
  )

  // Not a speed target: a bound so a broken agent fails instead of hanging. The first wait
  // includes importing client-node (the --kubeconfig path) through tsx, measured at 7-12 s
  // on a loaded 2-core machine; tap's own timeout is 120 s.
  const until = async (ok: () => boolean, what: string) => {
    const deadline = Date.now() + 60_000
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise<void>((r) => {
        waiters.push(r)
        setTimeout(r, 100)
      })
    }
  }

  const signals = new EventEmitter()
  let stderr = ''
  const exit = runAgent(
    [
      '--node-name',
      'node-a',
      '--cri-endpoint',
      ctrd.socket,
      '--kubeconfig',
      kubeconfig,
      '--interval',
      '100ms',
      '--heartbeat',
      '1s',
      '--log-level',
      'silent',
    ],
    {},
    { signals, stderr: (s) => void (stderr += s) },
  )
  // A failed assertion must not leave the agent running and the file waiting for tap's timeout.
  t.teardown(async () => {
    signals.emit('SIGTERM')
    await exit
  })

  await until(() => specs.length >= 1 && statuses.length >= 1, 'the first spec and status')
  t.same(specs[0]?.metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Node', name: 'node-a', uid: 'uid-1' }])
  t.same(
    specs[0]?.spec.images.map((i) => i.id),
    [a.configDigest],
  )
  t.equal(specs[0]?.spec.runtime?.name, 'containerd')
  t.equal(statuses[0]?.status?.conditions?.[0]?.status, 'True')

  await ctrd.importImage(b.path)
  await until(() => specs.length >= 2, 'the change')
  t.same(specs[1]?.spec.images.map((i) => i.id).sort(), [a.configDigest, b.configDigest].sort())

  const before = statuses.length
  await until(() => statuses.length > before, 'a heartbeat')
  t.equal(specs.length, 2, 'no spec writes while nothing changes')

  signals.emit('SIGTERM')
  t.equal(await exit, 0)
  t.equal(stderr, '')
})
