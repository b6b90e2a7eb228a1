import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { createHash } from 'node:crypto'
import { canonicalImages, createAgent, nodeImageSet, specDigest, type Clock } from '../../src/agent/agent.js'
import { PublishError, applyBody, type NodeImageSetStatus, type Publisher } from '../../src/agent/publish.js'
import type { NodeImageSet, RuntimeImage, RuntimeInfo } from '../../src/api/types.js'

const RUNTIME: RuntimeInfo = {
  name: 'containerd',
  version: '1.7.22',
  endpoint: 'unix:///run/containerd/containerd.sock',
}
const T0 = Date.parse('2025-03-01T12:00:00.000Z')

function hex(seed: string): string {
  return createHash('sha256').update(seed).digest('hex')
}

function image(name: string, tags = [`docker.io/library/${name}:1`]): RuntimeImage {
  return {
    id: `sha256:${hex(name)}`,
    repoTags: tags,
    repoDigests: tags.map((tag) => `${tag.slice(0, tag.lastIndexOf(':'))}@sha256:${hex(`${name}-manifest`)}`),
    size: 1000 + name.length,
    pinned: false,
  }
}

class FakeClock implements Clock {
  t = T0
  sleeps: number[] = []
  private wake: (() => void) | undefined
  now = () => this.t
  sleep(ms: number, signal: AbortSignal): Promise<void> {
    this.sleeps.push(ms)
    return new Promise((resolve) => {
      const done = () => {
        this.wake = undefined
        resolve()
      }
      this.wake = () => {
        this.t += ms
        done()
      }
      signal.addEventListener('abort', done, { once: true })
    })
  }
  /** Ends the pending sleep as if its time had passed. */
  fire(): boolean {
    const w = this.wake
    if (!w) return false
    w()
    return true
  }
}

class FakeCri {
  images: RuntimeImage[] = []
  error: Error | undefined
  calls = 0
  gate: Promise<void> | undefined
  async listImages(): Promise<RuntimeImage[]> {
    this.calls++
    if (this.gate) await this.gate
    if (this.error) throw this.error
    return structuredClone(this.images)
  }
  async version(): Promise<RuntimeInfo> {
    if (this.error) throw this.error
    return { ...RUNTIME }
  }
  async imageStatus(name: string): Promise<RuntimeImage | undefined> {
    if (this.error) throw this.error
    return structuredClone(this.images.find((i) => i.repoTags.includes(name) || i.repoDigests.includes(name)))
  }
}

class FakePublisher implements Publisher {
  applied: NodeImageSet[] = []
  statuses: NodeImageSetStatus[] = []
  applyError: Error | undefined
  statusError: Error | undefined
  exists = false
  async apply(set: NodeImageSet): Promise<void> {
    if (this.applyError) throw this.applyError
    this.exists = true
    this.applied.push(structuredClone(set))
  }
  async applyStatus(name: string, status: NodeImageSetStatus): Promise<void> {
    if (this.statusError) throw this.statusError
    // As the apiserver: no status subresource without the object.
    if (!this.exists) throw new PublishError(`nodeimagesets.neverpull.dev "${name}" not found (HTTP 404)`, 404)
    this.statuses.push(structuredClone(status))
  }
}

function setup(opts: { heartbeatMs?: number; backoffMaxMs?: number } = {}) {
  const clock = new FakeClock()
  const cri = new FakeCri()
  const publisher = new FakePublisher()
  const agent = createAgent({
    nodeName: 'node-a',
    cri,
    publisher,
    clock,
    intervalMs: 10_000,
    heartbeatMs: opts.heartbeatMs ?? 300_000,
    backoffInitialMs: 1_000,
    backoffMaxMs: opts.backoffMaxMs ?? 60_000,
  })
  return { clock, cri, publisher, agent }
}

function condition(status: NodeImageSetStatus | undefined, type: string) {
  return status?.conditions?.find((c) => c.type === type)
}

t.test('an unchanged set is published once, whatever order the runtime answers in', async (t) => {
  const { clock, cri, publisher, agent } = setup()
  cri.images = [image('nginx'), image('redis', ['docker.io/library/redis:7', 'docker.io/library/redis:latest'])]
  const first = await agent.tick()
  t.same(first, { delayMs: 10_000, runtimeOk: true, publishOk: true, specPublished: true, statusPublished: true })
  t.equal(publisher.applied.length, 1)
  const set = publisher.applied[0]
  t.equal(set?.metadata.name, 'node-a')
  t.equal(set?.spec.nodeName, 'node-a')
  t.same(set?.spec.runtime, RUNTIME)
  t.same(
    set?.spec.images.map((i) => i.id),
    [image('nginx').id, image('redis').id].sort(),
  )
  t.equal(publisher.statuses.length, 1, 'status goes with the first spec')
  t.equal(publisher.statuses[0]?.observedTime, new Date(T0).toISOString())

  for (let i = 0; i < 5; i++) {
    clock.t += 10_000
    cri.images = [...cri.images].reverse().map((img) => ({ ...img, repoTags: [...img.repoTags].reverse() }))
    const r = await agent.tick()
    t.equal(r.specPublished, false)
    t.equal(r.statusPublished, false)
  }
  t.equal(publisher.applied.length, 1, 'no spec write for an unchanged set')
  t.equal(publisher.statuses.length, 1, 'no status write before the heartbeat')
})

t.test('a change republishes spec and status together', async (t) => {
  const { clock, cri, publisher, agent } = setup()
  cri.images = [image('nginx')]
  await agent.tick()
  clock.t += 10_000
  cri.images = [image('nginx'), image('busybox')]
  const r = await agent.tick()
  t.equal(r.specPublished, true)
  t.equal(r.statusPublished, true)
  t.equal(publisher.applied.length, 2)
  t.equal(publisher.applied[1]?.spec.images.length, 2)
  t.equal(publisher.statuses[1]?.observedTime, new Date(T0 + 10_000).toISOString())

  clock.t += 10_000
  cri.images = [image('nginx', ['docker.io/library/nginx:1', 'docker.io/library/nginx:stable']), image('busybox')]
  await agent.tick()
  t.equal(publisher.applied.length, 3, 'a new tag on a known image is a change')

  clock.t += 10_000
  cri.images = []
  await agent.tick()
  t.equal(publisher.applied.length, 4)
  t.same(publisher.applied[3]?.spec.images, [], 'an honest empty list from a healthy runtime is published')
})

t.test(
  'a new image caught between its ID and its name (containerd adds them in two steps) is one write, not two',
  async (t) => {
    const { clock, cri, publisher, agent } = setup()
    cri.images = [image('nginx'), image('old', [])]
    await agent.tick()
    t.same(
      publisher.applied[0]?.spec.images.map((i) => i.id),
      canonicalImages([image('nginx'), image('old', [])]).map((i) => i.id),
      'the first list is published whole, untagged images too',
    )

    clock.t += 10_000
    cri.images = [image('nginx'), image('old', []), image('busybox', [])]
    const caught = await agent.tick()
    t.equal(caught.specPublished, false, 'a new image with no name yet waits one interval')

    clock.t += 10_000
    cri.images = [image('nginx'), image('old', []), image('busybox')]
    const named = await agent.tick()
    t.equal(named.specPublished, true)
    t.equal(publisher.applied.length, 2)
    t.same(publisher.applied[1]?.spec.images.find((i) => i.id === image('busybox').id)?.repoTags, [
      'docker.io/library/busybox:1',
    ])

    clock.t += 10_000
    cri.images = [image('nginx'), image('old', []), image('busybox'), image('dangling', [])]
    t.equal((await agent.tick()).specPublished, false)
    clock.t += 10_000
    const still = await agent.tick()
    t.equal(still.specPublished, true, 'still nameless an interval later: a real untagged image, published')
    t.ok(publisher.applied[2]?.spec.images.some((i) => i.id === image('dangling').id))
    clock.t += 10_000
    t.equal((await agent.tick()).specPublished, false, 'and no write after that')
  },
)

t.test('the spec is compared field by field: any one change is a new spec, an equal one is not', async (t) => {
  const { clock, cri, publisher, agent } = setup()
  const base = [image('nginx'), image('redis')]
  cri.images = base
  await agent.tick()
  const changes: Array<[string, (i: RuntimeImage) => RuntimeImage]> = [
    ['size', (i) => ({ ...i, size: i.size + 1 })],
    ['pinned', (i) => ({ ...i, pinned: true })],
    ['a digest', (i) => ({ ...i, repoDigests: [`${i.repoDigests[0]!.split('@')[0]!}@sha256:${hex('other')}`] })],
    ['no tags', (i) => ({ ...i, repoTags: [] })],
    ['the same name twice (de-duplicated: no change)', (i) => ({ ...i, repoTags: [...i.repoTags, ...i.repoTags] })],
  ]
  let writes = 1
  for (const [what, change] of changes) {
    clock.t += 10_000
    cri.images = [base[0]!, change(base[1]!)]
    await agent.tick()
    if (!what.includes('no change')) writes++
    t.equal(publisher.applied.length, writes, what)
    clock.t += 10_000
    cri.images = base
    await agent.tick()
    if (!what.includes('no change')) writes++
    t.equal(publisher.applied.length, writes, `${what}, undone`)
  }
  t.same(publisher.applied.at(-1)?.spec.images, canonicalImages(base))
})

t.test('heartbeat: status.observedTime is refreshed every heartbeat even when unchanged', async (t) => {
  const { clock, cri, publisher, agent } = setup({ heartbeatMs: 60_000 })
  cri.images = [image('nginx')]
  await agent.tick()
  const times: number[] = []
  for (let i = 1; i <= 13; i++) {
    clock.t = T0 + i * 10_000
    const r = await agent.tick()
    if (r.statusPublished) times.push(i * 10_000)
  }
  t.same(times, [60_000, 120_000], 'one status write per heartbeat')
  t.equal(publisher.applied.length, 1)
  t.equal(publisher.statuses.at(-1)?.observedTime, new Date(T0 + 120_000).toISOString())
})

t.test('runtime error: the last good list stays, observedTime stays, the condition says why', async (t) => {
  const { clock, cri, publisher, agent } = setup()
  cri.images = [image('nginx'), image('redis')]
  await agent.tick()
  t.equal(condition(publisher.statuses[0], 'RuntimeReachable')?.status, 'True')
  t.equal(condition(publisher.statuses[0], 'RuntimeReachable')?.reason, 'ImagesListed')

  clock.t += 10_000
  cri.error = new Error('CRI ListImages on unix:///run/containerd/containerd.sock failed: UNAVAILABLE: connect ENOENT')
  const r = await agent.tick()
  t.equal(r.runtimeOk, false)
  t.equal(r.specPublished, false, 'no spec write on error, so never an empty list')
  t.equal(r.statusPublished, true, 'the failure is reported at once')
  t.equal(publisher.applied.length, 1)
  const failed = publisher.statuses[1]
  t.equal(failed?.observedTime, new Date(T0).toISOString(), 'observedTime is the last confirmation, not now')
  const c = condition(failed, 'RuntimeReachable')
  t.equal(c?.status, 'False')
  t.equal(c?.reason, 'RuntimeError')
  t.match(c?.message, /UNAVAILABLE/)
  t.match(c?.message, /unix:\/\/\/run\/containerd\/containerd\.sock/)
  t.match(c?.message, /published list of 2 images is kept/)
  t.equal(c?.lastTransitionTime, new Date(T0 + 10_000).toISOString())

  for (let i = 0; i < 3; i++) {
    clock.t += r.delayMs
    t.equal((await agent.tick()).statusPublished, false, 'the same failure is not rewritten every retry')
  }

  clock.t += 10_000
  cri.error = undefined
  const back = await agent.tick()
  t.equal(back.specPublished, false, 'same list as before: no spec write')
  t.equal(back.statusPublished, true, 'recovery flips the condition at once')
  const ok = publisher.statuses.at(-1)
  t.equal(condition(ok, 'RuntimeReachable')?.status, 'True')
  t.equal(condition(ok, 'RuntimeReachable')?.lastTransitionTime, new Date(clock.t).toISOString())
  t.equal(ok?.observedTime, new Date(clock.t).toISOString())
  t.equal(publisher.applied.length, 1)
})

t.test('never publishes an empty list because of an error, even at start', async (t) => {
  const { clock, cri, publisher, agent } = setup()
  cri.error = new Error('CRI ListImages on unix:///x.sock failed: DEADLINE_EXCEEDED')
  for (let i = 0; i < 4; i++) {
    const r = await agent.tick()
    t.equal(r.runtimeOk, false)
    clock.t += r.delayMs
  }
  t.equal(publisher.applied.length, 0, 'nothing applied')
  t.equal(publisher.statuses.length, 0, 'no object to put a status on')

  cri.error = undefined
  cri.images = [image('nginx')]
  const r = await agent.tick()
  t.equal(r.specPublished, true)
  t.equal(publisher.applied[0]?.spec.images.length, 1)
})

t.test('backoff doubles from the initial delay, is capped, and resets on success', async (t) => {
  const { clock, cri, agent } = setup({ backoffMaxMs: 20_000 })
  cri.error = new Error('down')
  const delays: number[] = []
  for (let i = 0; i < 8; i++) {
    const r = await agent.tick()
    delays.push(r.delayMs)
    clock.t += r.delayMs
  }
  t.same(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 20_000, 20_000, 20_000])
  cri.error = undefined
  t.equal((await agent.tick()).delayMs, 10_000, 'back to the interval')
  cri.error = new Error('down again')
  t.equal((await agent.tick()).delayMs, 1_000, 'a new failure starts from the initial delay')
})

t.test(
  'runtime lost after a good publish: asked again every interval at the latest, so recovery shows within one',
  async (t) => {
    const { clock, cri, publisher, agent } = setup({ backoffMaxMs: 60_000 })
    cri.images = [image('nginx')]
    await agent.tick()
    cri.error = new Error('connect ENOENT /run/containerd/containerd.sock')
    const delays: number[] = []
    for (let i = 0; i < 8; i++) {
      const r = await agent.tick()
      t.equal(r.publishOk, true, 'the apiserver is fine: the condition is published')
      delays.push(r.delayMs)
      clock.t += r.delayMs
    }
    t.same(delays, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000, 10_000], 'never longer than the interval')
    t.equal(condition(publisher.statuses.at(-1), 'RuntimeReachable')?.status, 'False')
    t.equal(publisher.applied.length, 1, 'the last good list stays published')
    cri.error = undefined
    const r = await agent.tick()
    t.equal(r.delayMs, 10_000)
    t.equal(
      condition(publisher.statuses.at(-1), 'RuntimeReachable')?.status,
      'True',
      'recovery published at the next tick',
    )
  },
)

t.test('apiserver error: spec retried, failure reported as a condition, observedTime not advanced', async (t) => {
  const { clock, cri, publisher, agent } = setup()
  cri.images = [image('nginx')]
  await agent.tick()

  clock.t += 10_000
  cri.images = [image('nginx'), image('redis')]
  publisher.applyError = new PublishError('applying NodeImageSet "node-a": Request entity too large (HTTP 413)', 413)
  const r = await agent.tick()
  t.equal(r.publishOk, false)
  t.equal(r.delayMs, 1_000, 'backs off')
  const status = publisher.statuses.at(-1)
  t.equal(condition(status, 'Published')?.status, 'False')
  t.equal(condition(status, 'Published')?.reason, 'ApplyFailed')
  t.match(condition(status, 'Published')?.message, /HTTP 413/)
  t.equal(condition(status, 'RuntimeReachable')?.status, 'True')
  t.equal(status?.observedTime, new Date(T0).toISOString(), 'the published list was last confirmed at T0')

  clock.t += 1_000
  publisher.applyError = undefined
  const again = await agent.tick()
  t.equal(again.specPublished, true, 'the same change is retried')
  t.equal(publisher.applied.at(-1)?.spec.images.length, 2)
  t.equal(condition(publisher.statuses.at(-1), 'Published')?.status, 'True')
  t.equal(again.delayMs, 10_000)
})

t.test('apiserver unreachable: nothing lost, status retried until it lands', async (t) => {
  const { clock, cri, publisher, agent } = setup()
  cri.images = [image('nginx')]
  publisher.applyError = new PublishError('applying NodeImageSet "node-a": connect ECONNREFUSED 10.96.0.1:443')
  publisher.statusError = publisher.applyError
  const r1 = await agent.tick()
  t.equal(r1.publishOk, false)
  clock.t += r1.delayMs
  const r2 = await agent.tick()
  t.equal(r2.delayMs, 2_000)
  publisher.applyError = undefined
  publisher.statusError = undefined
  clock.t += r2.delayMs
  const r3 = await agent.tick()
  t.equal(r3.specPublished, true)
  t.equal(r3.statusPublished, true)
  t.equal(condition(publisher.statuses.at(-1), 'Published')?.status, 'True')

  // Spec landed but status failed: status is retried on the next tick even without a change.
  clock.t += 10_000
  cri.images = [image('redis')]
  publisher.statusError = new PublishError('timeout')
  const r4 = await agent.tick()
  t.equal(r4.specPublished, true)
  t.equal(r4.statusPublished, false)
  publisher.statusError = undefined
  clock.t += r4.delayMs
  const r5 = await agent.tick()
  t.equal(r5.statusPublished, true)
  t.equal(publisher.statuses.at(-1)?.observedTime, new Date(clock.t).toISOString())
})

t.test('run() loops on the clock; stop() waits for the current iteration', async (t) => {
  const { clock, cri, publisher, agent } = setup()
  cri.images = [image('nginx')]
  const done = agent.run()
  t.equal(agent.run(), done, 'run() twice is the same loop')
  await new Promise((r) => setImmediate(r))
  t.equal(cri.calls, 1)
  t.same(clock.sleeps, [10_000])
  t.ok(clock.fire())
  await new Promise((r) => setImmediate(r))
  t.equal(cri.calls, 2)

  // Hold the next listing in flight, then ask to stop.
  let release!: () => void
  cri.gate = new Promise((r) => (release = r))
  cri.images = [image('nginx'), image('redis')]
  t.ok(clock.fire())
  await new Promise((r) => setImmediate(r))
  t.equal(cri.calls, 3)
  let stopped = false
  const stopping = agent.stop().then(() => (stopped = true))
  await sleep(20)
  t.equal(stopped, false, 'stop() waits for the iteration in flight')
  release()
  await stopping
  await done
  t.equal(stopped, true)
  t.equal(publisher.applied.length, 2, 'the iteration in flight finished its publish')
  t.equal(cri.calls, 3, 'no iteration after stop')
})

t.test('stop() during the sleep ends the loop at once', async (t) => {
  const { cri, agent } = setup()
  cri.images = []
  const done = agent.run()
  await new Promise((r) => setImmediate(r))
  await agent.stop()
  await done
  t.equal(cri.calls, 1)
})

t.test('canonical form and digest ignore order and duplicates', async (t) => {
  const a = [image('b', ['x/b:2', 'x/b:1']), image('a')]
  const b = [image('a'), { ...image('b', ['x/b:1', 'x/b:2', 'x/b:1']) }]
  b[1]!.repoDigests = [...(b[1]?.repoDigests ?? [])].reverse()
  const sa = nodeImageSet('n', RUNTIME, canonicalImages(a)).spec
  const sb = nodeImageSet('n', RUNTIME, canonicalImages(b)).spec
  t.equal(specDigest(sa), specDigest(sb))
  t.not(specDigest(sa), specDigest(nodeImageSet('n', { ...RUNTIME, version: '2.0.0' }, canonicalImages(a)).spec))
})

t.test('object size for 1,000 realistic images stays well under the 1.5 MiB etcd limit', async (t) => {
  const registries = ['docker.io/library', 'registry.k8s.io', 'ghcr.io/example-org/platform', 'quay.io/prometheus']
  const images: RuntimeImage[] = []
  for (let i = 0; i < 1000; i++) {
    const repo = `${registries[i % registries.length]}/service-${String(i).padStart(4, '0')}-api`
    const tags = i % 3 === 0 ? [`${repo}:v1.${i}.0`, `${repo}:latest`] : [`${repo}:v1.${i}.0`]
    images.push({
      id: `sha256:${hex(`id-${i}`)}`,
      repoTags: tags,
      repoDigests: [`${repo}@sha256:${hex(`manifest-${i}`)}`],
      size: 50_000_000 + i * 123_457,
      pinned: i < 3,
    })
  }
  const set = nodeImageSet('ip-10-0-12-34.eu-west-1.compute.internal', RUNTIME, canonicalImages(images))
  const body = applyBody(set, { name: set.metadata.name, uid: '0c3b3c6e-8f0d-4c9c-9d59-6f1f1e8a7f00' })
  const bytes = Buffer.byteLength(JSON.stringify(body))
  t.comment(`NodeImageSet apply body for 1,000 images: ${bytes} bytes (${(bytes / 1024).toFixed(1)} KiB)`)
  t.ok(bytes < 1.5 * 1024 * 1024 * 0.5, `${bytes} bytes is under half of 1.5 MiB`)
})
