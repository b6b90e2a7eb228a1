import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createAgent } from '../../src/agent/agent.js'
import {
  CRI_PROTO_PATH,
  CriError,
  DEFAULT_CRI_ENDPOINTS,
  connectCri,
  normalizeEndpoint,
  probeEndpoint,
  type CriClient,
} from '../../src/agent/cri.js'
import type { NodeImageSet, RuntimeImage } from '../../src/api/types.js'
import { containerdSkipReason } from '../helpers/containerd.js'
import { containerdWithCri } from '../helpers/containerd-cri.js'
import { writeOciImage } from '../helpers/oci.js'

t.test('endpoints: unix URLs and bare paths', async (t) => {
  t.equal(normalizeEndpoint('unix:///run/containerd/containerd.sock'), 'unix:///run/containerd/containerd.sock')
  t.equal(normalizeEndpoint('/var/run/crio/crio.sock'), 'unix:///var/run/crio/crio.sock')
  t.equal(normalizeEndpoint('unix:/var/run/crio/crio.sock'), 'unix:///var/run/crio/crio.sock')
  t.equal(normalizeEndpoint('run/x.sock'), `unix://${join(process.cwd(), 'run/x.sock')}`)
  t.throws(() => normalizeEndpoint('tcp://10.0.0.1:1234'), /unsupported CRI endpoint "tcp:\/\/10\.0\.0\.1:1234"/)
  t.throws(() => normalizeEndpoint(''), CriError)
  t.throws(() => normalizeEndpoint('unix://'), /has no socket path/)
  t.match(CRI_PROTO_PATH, /\/proto\/cri-images\.proto$/)
})

t.test('probeEndpoint picks the first socket that exists', async (t) => {
  const asked: string[] = []
  const found = await probeEndpoint(undefined, (path) => {
    asked.push(path)
    return path === '/var/run/crio/crio.sock'
  })
  t.equal(found, 'unix:///var/run/crio/crio.sock')
  t.same(asked, ['/run/containerd/containerd.sock', '/var/run/crio/crio.sock'], 'stops at the first hit, in order')
  t.equal(DEFAULT_CRI_ENDPOINTS[0], 'unix:///run/containerd/containerd.sock')

  const err = await probeEndpoint(['unix:///nope/a.sock', '/nope/b.sock'], async () => false).catch((e: unknown) => e)
  t.type(err, CriError)
  t.match(
    (err as Error).message,
    /no container runtime socket found \(tried unix:\/\/\/nope\/a\.sock, \/nope\/b\.sock\).*--cri-endpoint/,
  )

  // The default check wants a real socket, not just any file.
  const dir = await mkdtemp(join(tmpdir(), 'npg-probe-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const sock = join(dir, 'rt.sock')
  const server = createServer()
  await new Promise<void>((r) => server.listen(sock, r))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  t.equal(await probeEndpoint([join(dir, 'missing.sock'), dir, `unix://${sock}`]), `unix://${sock}`)
})

t.test('a missing socket is a clear, prompt error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'npg-nosock-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const endpoint = `unix://${join(dir, 'absent.sock')}`
  const cri = connectCri(endpoint, { timeoutMs: 2_000 })
  t.teardown(() => cri.close())
  const started = Date.now()
  const err = await cri.listImages().catch((e: unknown) => e)
  t.type(err, CriError)
  t.equal((err as CriError).endpoint, endpoint)
  t.equal((err as CriError).code, 14, 'UNAVAILABLE')
  t.match((err as Error).message, `CRI ListImages on ${endpoint} failed: UNAVAILABLE`)
  t.ok(Date.now() - started < 2_500)
  const verr = await cri.version().catch((e: unknown) => e)
  t.match((verr as Error).message, `CRI Version on ${endpoint} failed`)
})

// Skipped, with the reason in the TAP output, where containerd cannot run.
const containerdSkip = await containerdSkipReason()

t.test('against a real containerd', { skip: containerdSkip ?? false }, async (t) => {
  const started = await containerdWithCri(t)
  if (started === undefined) return
  const { ctrd, cri } = started

  const a = await writeOciImage(ctrd.dir, 'a.tar', {
    names: ['docker.io/neverpull/app:1.0', 'docker.io/neverpull/app:latest'],
    content: 'image a',
  })
  const b = await writeOciImage(ctrd.dir, 'b.tar', { names: ['localhost:5000/tools/b:2'], content: 'image b' })
  await ctrd.importImage(a.path)
  await ctrd.importImage(b.path)

  const byId = (images: RuntimeImage[]) => new Map(images.map((i) => [i.id, i]))

  await t.test('version reports containerd', async (t) => {
    const v = await cri.version()
    t.equal(v.name, 'containerd')
    t.match(v.version, /^v?\d+\.\d+/)
    t.equal(v.endpoint, ctrd.endpoint)
  })

  await t.test('ListImages reports exactly the imported images', async (t) => {
    const images = await cri.listImages()
    t.equal(images.length, 2, 'two images: the double tag is one image')
    const m = byId(images)
    const ia = m.get(a.configDigest)
    const ib = m.get(b.configDigest)
    t.ok(ia, 'image id is the config digest')
    t.ok(ib)
    t.same([...(ia?.repoTags ?? [])].sort(), ['docker.io/neverpull/app:1.0', 'docker.io/neverpull/app:latest'])
    t.same(ib?.repoTags, ['localhost:5000/tools/b:2'])
    t.same(ia?.repoDigests, [], 'imported without a registry: no repo digests')
    t.equal(ia?.size, a.contentSize, 'size is manifest + config + layer bytes')
    t.equal(typeof ib?.size, 'number')
    t.equal(ia?.pinned, false)

    // ctr sees the same names, plus the sha256:<id> references the CRI plugin adds.
    const refs = (await ctrd.listRefs()).sort()
    t.same(refs, [...a.names, ...b.names, a.configDigest, b.configDigest].sort())
  })

  await t.test('a bare socket path works as well', async (t) => {
    const bare = connectCri(ctrd.socket)
    t.teardown(() => bare.close())
    t.equal(bare.endpoint, ctrd.endpoint)
    t.equal((await bare.listImages()).length, 2)
  })

  await t.test('the agent publishes what containerd lists', async (t) => {
    const applied: NodeImageSet[] = []
    const agent = createAgent({
      nodeName: 'node-a',
      cri,
      publisher: {
        async apply(set) {
          applied.push(set)
        },
        async applyStatus() {},
      },
    })
    const r = await agent.tick()
    t.equal(r.runtimeOk, true)
    t.equal(applied[0]?.spec.runtime?.name, 'containerd')
    t.same(
      applied[0]?.spec.images.map((i) => [i.id, i.repoTags]),
      [
        [a.configDigest, ['docker.io/neverpull/app:1.0', 'docker.io/neverpull/app:latest']],
        [b.configDigest, ['localhost:5000/tools/b:2']],
      ].sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    )
  })

  await t.test('removing an image makes it disappear', async (t) => {
    await ctrd.removeImage('localhost:5000/tools/b:2')
    // containerd's CRI keeps the image under its sha256:<id> reference: still present for
    // the kubelet (by ID), with no tags.
    const untagged = await eventually(cri, (m) => m.get(b.configDigest)?.repoTags.length === 0)
    t.same(untagged.get(b.configDigest)?.repoTags, [])
    await ctrd.removeImage(b.configDigest)
    const gone = await eventually(cri, (m) => !m.has(b.configDigest))
    t.equal(gone.size, 1)
    t.ok(gone.has(a.configDigest), 'the other image stays')
  })

  await t.test('a runtime restart: errors name the endpoint, then the same client recovers', async (t) => {
    await ctrd.stop()
    const err = await cri.listImages().catch((e: unknown) => e)
    t.type(err, CriError)
    t.match((err as Error).message, ctrd.endpoint)
    await ctrd.restart()
    const images = await eventuallyList(cri)
    t.same(
      images.map((i) => i.id),
      [a.configDigest],
      'images survive the restart',
    )
  })
})

async function eventually(
  cri: CriClient,
  ok: (byId: Map<string, RuntimeImage>) => boolean,
  timeoutMs = 5_000,
): Promise<Map<string, RuntimeImage>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const m = new Map((await cri.listImages()).map((i) => [i.id, i]))
    if (ok(m) || Date.now() > deadline) return m
    await sleep(50)
  }
}

async function eventuallyList(cri: CriClient, timeoutMs = 10_000): Promise<RuntimeImage[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await cri.listImages()
    } catch (err) {
      if (Date.now() > deadline) throw err
      await sleep(100)
    }
  }
}
