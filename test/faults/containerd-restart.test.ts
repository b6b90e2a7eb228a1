import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { createAgent } from '../../src/agent/agent.js'
import { connectCri } from '../../src/agent/cri.js'
import { createKubePublisher } from '../../src/agent/publish.js'
import type { NodeImageSet } from '../../src/api/types.js'
import { containerdSkipReason, startContainerd } from '../helpers/containerd.js'
import { startFakeApiServer } from '../helpers/fake-apiserver.js'
import { writeOciImage } from '../helpers/oci.js'

// containerd stopped and restarted under a running agent: the condition says so, the
// last good list stays published (never an empty one), and the recovery is published
// within one interval of the runtime coming back.

const skip = await containerdSkipReason()
const INTERVAL_MS = 1000

async function until<T>(what: string, fn: () => T | undefined, ms: number): Promise<{ value: T; after: number }> {
  const start = Date.now()
  for (;;) {
    const value = fn()
    if (value !== undefined) return { value, after: Date.now() - start }
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(50)
  }
}

t.test('containerd stopped and restarted under the agent', { skip: skip ?? false, timeout: 120_000 }, async (t) => {
  const ctrd = await startContainerd()
  t.teardown(() => ctrd.cleanup())
  const image = await writeOciImage(ctrd.dir, 'a.tar', { names: ['docker.io/neverpull/a:1'], content: 'a' })
  await ctrd.importImage(image.path)
  const api = await startFakeApiServer()
  t.teardown(() => api.close())
  api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', uid: 'uid-node-a' } })

  const cri = connectCri(ctrd.endpoint)
  t.teardown(() => cri.close())
  const agent = createAgent({
    nodeName: 'node-a',
    cri,
    publisher: createKubePublisher(api.kubeConfig(), { nodeName: 'node-a' }),
    intervalMs: INTERVAL_MS,
  })
  const done = agent.run()
  t.teardown(async () => {
    await agent.stop()
    await done
  })

  const object = (): NodeImageSet | undefined =>
    api.get('neverpull.dev/v1alpha1', 'NodeImageSet', 'node-a') as NodeImageSet | undefined
  const reachable = (): string | undefined =>
    object()?.status?.conditions?.find((c) => c.type === 'RuntimeReachable')?.status
  await until(
    'the first publish',
    () => (object()?.spec.images.length === 1 && reachable() === 'True' ? true : undefined),
    20_000,
  )

  await ctrd.stop()
  const down = await until(
    'RuntimeReachable=False',
    () => (reachable() === 'False' ? true : undefined),
    10 * INTERVAL_MS,
  )
  t.comment(`runtime stopped: condition False after ${down.after} ms`)
  const message = object()?.status?.conditions?.find((c) => c.type === 'RuntimeReachable')?.message ?? ''
  t.match(message, /the published list of 1 images is kept/)

  // A long outage, so any reconnect backoff has grown.
  await sleep(8 * INTERVAL_MS)
  t.equal(object()?.spec.images.length, 1, 'the last good list is still published, never an empty one')
  t.equal(object()?.spec.images[0]?.repoTags?.[0], 'docker.io/neverpull/a:1')

  await ctrd.restart()
  const up = await until('RuntimeReachable=True', () => (reachable() === 'True' ? true : undefined), 30_000)
  t.comment(`runtime restarted: condition True after ${up.after} ms (interval ${INTERVAL_MS} ms)`)
  t.ok(
    up.after <= 2 * INTERVAL_MS,
    `recovery published within one interval of the restart, plus a tick (${up.after} ms)`,
  )
  t.equal(object()?.spec.images.length, 1)
})
