import t from 'tap'
import { createHash } from 'node:crypto'
import { canonicalImages, nodeImageSet } from '../../src/agent/agent.js'
import { boundImagesElsewhere } from '../../src/agent/containerd.js'
import type { RuntimeImage } from '../../src/api/types.js'
import { toNodeImages } from '../../src/inventory/convert.js'

// etcd refuses objects over 1.5 MiB (KUBERNETES-FACTS §7). A busy node: 1,000 images the
// kubelet sees, each with two tags and a digest under long registry paths, and 1,000 more
// in other containerd namespaces (the most the agent publishes there).

const LIMIT = 1.5 * 1024 * 1024
const hex = (s: string): string => createHash('sha256').update(s).digest('hex')

t.test('a NodeImageSet with 1,000 k8s.io images and 1,000 elsewhere stays under the etcd limit', (t) => {
  const images: RuntimeImage[] = []
  for (let i = 0; i < 1000; i++) {
    const repo = `registry.example-corp.internal:5000/platform-team/service-${String(i).padStart(4, '0')}-backend`
    images.push({
      id: `sha256:${hex(`id${i}`)}`,
      repoTags: [`${repo}:v1.${i}.0-build.20261130`, `${repo}:release-2026-11`],
      repoDigests: [`${repo}@sha256:${hex(`m${i}`)}`],
      size: 123_456_789 + i,
      pinned: i % 10 === 0,
    })
  }
  const elsewhere = boundImagesElsewhere(
    Array.from({ length: 1200 }, (_, i) => ({
      name: `registry.example-corp.internal:5000/platform-team/service-${String(i).padStart(4, '0')}-backend:v1.${i}.0-build.20261130`,
      digest: `sha256:${hex(`e${i}`)}`,
      containerdNamespace: i % 2 === 0 ? 'default' : 'moby',
    })),
  )
  const set = nodeImageSet(
    'ip-10-0-12-34.eu-west-1.compute.internal',
    { name: 'containerd', version: '2.1.4', endpoint: 'unix:///run/containerd/containerd.sock' },
    canonicalImages(images),
    elsewhere,
  )
  const object = {
    ...set,
    status: {
      observedTime: '2026-11-30T15:00:00Z',
      imageCount: 1000,
      imageFilesystem: {
        mountpoint: '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs',
        usedBytes: 9e10,
        capacityBytes: 1e11,
        availableBytes: 1e10,
        usedPercent: 90,
      },
    },
  }
  const bytes = Buffer.byteLength(JSON.stringify(object))
  t.comment(
    `NodeImageSet with 1,000 k8s.io images and ${elsewhere.images.length} elsewhere (+${elsewhere.omitted} counted): ${bytes} bytes = ${(bytes / 1024 / 1024).toFixed(2)} MiB`,
  )
  t.equal(elsewhere.images.length, 1000, 'the elsewhere list is bounded at 1,000')
  t.equal(elsewhere.omitted, 200)
  t.ok(bytes < LIMIT, `${bytes} bytes < 1.5 MiB`)
  const read = toNodeImages(object)
  t.ok(read.ok, 'and the webhook reads it back')
  if (read.ok) t.equal(read.value.elsewhere?.length, 1000)
  t.end()
})
