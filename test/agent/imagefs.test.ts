import t from 'tap'
import { nodeStatFs, readImageFilesystem, usedPercent } from '../../src/agent/imagefs.js'
import { connectCri } from '../../src/agent/cri.js'
import { containerdSkipReason, startContainerd } from '../helpers/containerd.js'

t.test("usedPercent is the kubelet's: 100 - available*100/capacity, integer division", (t) => {
  const table: Array<[bigint, bigint, number | undefined]> = [
    [100n, 15n, 85],
    [100n, 16n, 84],
    [1000n, 149n, 86],
    [3n, 0n, 100],
    [3n, 3n, 0],
    [0n, 0n, undefined],
    // Exabyte filesystems: no precision lost.
    [2n ** 62n, 2n ** 62n / 10n, 91],
  ]
  for (const [capacityBytes, availableBytes, want] of table)
    t.equal(usedPercent({ capacityBytes, availableBytes }), want, `${capacityBytes}/${availableBytes}`)
  t.end()
})

t.test('the mountpoint is looked up under the host root; without a size only usedBytes goes out', async (t) => {
  const asked: string[] = []
  const cri = {
    imageFsInfo: () =>
      Promise.resolve({
        mountpoint: '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs',
        usedBytes: 42,
      }),
  }
  const fs = await readImageFilesystem(
    cri,
    (p) => (asked.push(p), Promise.resolve({ capacityBytes: 1000n, availableBytes: 100n })),
    '/host',
  )
  t.same(asked, ['/host/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs'])
  t.same(fs, {
    usedBytes: 42,
    mountpoint: '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs',
    capacityBytes: 1000,
    availableBytes: 100,
    usedPercent: 90,
  })
  const unsized = await readImageFilesystem(cri, () => Promise.reject(new Error('ENOENT')), '/')
  t.same(unsized, { usedBytes: 42, mountpoint: '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs' })
  t.equal(await readImageFilesystem({ imageFsInfo: () => Promise.resolve(undefined) }, nodeStatFs, '/'), undefined)
})

const skip = await containerdSkipReason()

t.test('a real containerd reports its image filesystem, and statfs sizes it', { skip: skip ?? false }, async (t) => {
  const ctrd = await startContainerd()
  t.teardown(() => ctrd.cleanup())
  const cri = connectCri(ctrd.endpoint)
  t.teardown(() => cri.close())
  const info = await cri.imageFsInfo!()
  t.ok(
    info?.mountpoint.startsWith(ctrd.dir),
    `the snapshotter's directory under containerd's root (${info?.mountpoint})`,
  )
  const fs = await readImageFilesystem(cri, nodeStatFs, '/')
  t.ok(fs?.capacityBytes !== undefined && fs.capacityBytes > 0, 'capacity from statfs')
  t.ok(fs?.usedPercent !== undefined && fs.usedPercent >= 0 && fs.usedPercent <= 100, `usedPercent ${fs?.usedPercent}`)
})

t.test(
  'the agent publishes the image filesystem in status, and writes again only when the percentage moves',
  async (t) => {
    const { createAgent } = await import('../../src/agent/agent.js')
    let percent = 90
    let usedBytes = 1
    const statuses: Array<Record<string, unknown>> = []
    const agent = createAgent({
      nodeName: 'n',
      cri: {
        listImages: () => Promise.resolve([]),
        imageStatus: () => Promise.resolve(undefined),
        version: () => Promise.resolve({ name: 'containerd', version: '2', endpoint: 'unix:///x' }),
      },
      imageFilesystem: () =>
        Promise.resolve({
          usedBytes: usedBytes++,
          capacityBytes: 100,
          availableBytes: 100 - percent,
          usedPercent: percent,
        }),
      publisher: {
        apply: () => Promise.resolve(),
        applyStatus: (_name, status) => {
          statuses.push(status as Record<string, unknown>)
          return Promise.resolve()
        },
      },
    })
    await agent.tick()
    t.match(statuses.at(-1), { imageFilesystem: { usedPercent: 90 } })
    const writes = statuses.length
    await agent.tick()
    t.equal(statuses.length, writes, 'bytes alone change nothing')
    percent = 91
    await agent.tick()
    t.equal(statuses.length, writes + 1, 'a new percentage is a status write')
    t.match(statuses.at(-1), { imageFilesystem: { usedPercent: 91 } })
  },
)

t.test('the agent metrics carry the image filesystem usage and the images elsewhere', async (t) => {
  const { createAgent } = await import('../../src/agent/agent.js')
  const { createAgentMetrics } = await import('../../src/agent/metrics.js')
  const metrics = createAgentMetrics()
  t.notMatch(
    await metrics.registry.metrics(),
    'neverpull_agent_image_filesystem_used_percent',
    'absent before anything is known',
  )
  const agent = createAgent({
    nodeName: 'n',
    cri: {
      listImages: () => Promise.resolve([]),
      imageStatus: () => Promise.resolve(undefined),
      version: () => Promise.resolve({ name: 'containerd', version: '2', endpoint: 'unix:///x' }),
    },
    containerd: {
      listImagesElsewhere: () =>
        Promise.resolve({ images: [{ name: 'docker.io/library/a:1', containerdNamespace: 'default' }], omitted: 2 }),
    },
    imageFilesystem: () => Promise.resolve({ usedBytes: 1, capacityBytes: 100, availableBytes: 12, usedPercent: 88 }),
    publisher: { apply: () => Promise.resolve(), applyStatus: () => Promise.resolve() },
    observer: metrics,
  })
  await agent.tick()
  const text = await metrics.registry.metrics()
  t.match(text, /neverpull_agent_image_filesystem_used_percent 88/)
  t.match(text, /neverpull_agent_images_elsewhere 3/)
})
