import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t from 'tap'
import { runExplain } from '../../src/inspect/command.js'
import { startFakeApiServer } from '../helpers/fake-apiserver.js'

// explain pod NAME reads the pod from the cluster of --kubeconfig through the access layer
// (src/kube/api.ts): as the apiserver wrote it, and a missing pod named as such.

t.test('explain pod NAME --kubeconfig: the pod read from the cluster, a missing one said so', async (t) => {
  const server = await startFakeApiServer()
  t.teardown(() => server.close())
  server.put({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'typo', namespace: 'default', uid: 'u1' },
    spec: {
      nodeName: 'node-a',
      containers: [{ name: 'typo', image: 'example.invalid/neverpull-demo:1', imagePullPolicy: 'Never' }],
    },
  })
  const dir = await mkdtemp(join(tmpdir(), 'npg-explain-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const kubeconfig = join(dir, 'kubeconfig')
  await writeFile(kubeconfig, server.kubeConfig().exportConfig())
  const inventory = join(import.meta.dirname, '..', '..', 'examples', 'inventory.yaml')
  const run = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    const out: string[] = []
    const err: string[] = []
    const sink = (into: string[]): Writable =>
      new Writable({
        write: (chunk: Buffer, _enc, done) => {
          into.push(chunk.toString())
          done()
        },
      })
    const code = await runExplain(argv, {
      stdout: sink(out),
      stderr: sink(err),
      stdin: () => Promise.resolve(''),
      now: () => Date.now(),
    })
    return { code, out: out.join(''), err: err.join('') }
  }

  const found = await run(['pod', 'typo', '--kubeconfig', kubeconfig, '--inventory-file', inventory])
  t.match(found.out, /typo/, 'the pod was read and explained')
  t.match(found.out, /example\.invalid\/neverpull-demo:1/)
  t.match(server.requests, [{ method: 'GET', path: '/api/v1/namespaces/default/pods/typo' }])

  const missing = await run(['pod', 'nope', '--kubeconfig', kubeconfig, '--inventory-file', inventory])
  t.not(missing.code, 0)
  t.match(missing.err, /pod "nope" not found in namespace "default"/)
})
