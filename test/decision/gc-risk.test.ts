import t from 'tap'
import { decide, type Subject } from '../../src/decision/decide.js'
import { warningsFor } from '../../src/decision/messages.js'
import { DEFAULT_IMAGE_GC, type ImageGcPolicy } from '../../src/api/image-gc.js'
import type { NodeImageSetImageFilesystem } from '../../src/api/types.js'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'
import type { ContainerFacts, PodTemplateFacts } from '../../src/workload/pod-template.js'
import { NOW, nodeFacts, runtimeImage, STALE_MS } from '../helpers/inventory.js'

// The kubelet's image GC deletes unused, unpinned images once the image filesystem is at or
// above --image-gc-high-threshold: a Never image there is one idle moment from
// ErrImageNeverPull.

const APP = 'docker.io/library/app:1'
const fs = (usedPercent: number | undefined): NodeImageSetImageFilesystem => ({
  mountpoint: '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs',
  usedBytes: 1,
  ...(usedPercent === undefined ? {} : { usedPercent, capacityBytes: 100, availableBytes: 100 - usedPercent }),
})
const index = new InventoryIndex({ staleAfterMs: STALE_MS })
function node(name: string, zone: string, usedPercent: number | undefined, images: Array<[string, boolean]>): void {
  index.upsertNode(nodeFacts({ name, labels: { zone } }))
  index.upsertImages({
    nodeName: name,
    images: images.map(([ref, pinned]) => ({ ...runtimeImage(ref), pinned })),
    observedAt: NOW - 60_000,
    imageFilesystem: fs(usedPercent),
  })
}
node('full', 'a', 91, [[APP, false]])
node('edge', 'b', 85, [[APP, false]])
node('fine', 'c', 84, [[APP, false]])
node('pinned', 'd', 97, [[APP, true]])
node('unsized', 'e', undefined, [[APP, false]])
node('empty', 'f', 99, [])
node('mixed-ok', 'f', 10, [[APP, false]])

const subject: Subject = { kind: 'Pod', namespace: 'default', name: 'web', operation: 'CREATE' }
const tpl = (zone: string, image = 'app:1', pullPolicy = 'Never'): PodTemplateFacts => ({
  kind: 'Pod',
  perNode: false,
  mirror: false,
  placement: { tolerations: [], nodeSelector: { zone } },
  containers: [{ kind: 'container', name: 'app', image, pullPolicy } satisfies ContainerFacts],
})
const run = (zone: string, imageGc: ImageGcPolicy | null = DEFAULT_IMAGE_GC, image?: string) =>
  decide(index, {
    subject,
    template: tpl(zone, image),
    mode: 'enforce',
    now: NOW,
    ...(imageGc === null ? {} : { imageGc }),
  })

t.test('the table', (t) => {
  const table: Array<[string, string, ImageGcPolicy | null, string[] | undefined, string]> = [
    ['above the threshold, unpinned', 'a', DEFAULT_IMAGE_GC, ['full:91'], 'warn'],
    ['exactly at the threshold counts (the kubelet uses >=)', 'b', DEFAULT_IMAGE_GC, ['edge:85'], 'warn'],
    ['below the threshold', 'c', DEFAULT_IMAGE_GC, undefined, 'allow'],
    ['pinned images are never collected', 'd', DEFAULT_IMAGE_GC, undefined, 'allow'],
    ['no capacity known: no guess', 'e', DEFAULT_IMAGE_GC, undefined, 'allow'],
    ['a full node without the image is not a GC risk (it is a partial)', 'f', DEFAULT_IMAGE_GC, undefined, 'warn'],
    ['a higher threshold of the cluster', 'a', { ...DEFAULT_IMAGE_GC, highThresholdPercent: 95 }, undefined, 'allow'],
    [
      "threshold 100 turns the kubelet's GC off",
      'd',
      { ...DEFAULT_IMAGE_GC, highThresholdPercent: 100 },
      undefined,
      'allow',
    ],
    ['without the settings, nothing is said', 'a', null, undefined, 'allow'],
  ]
  for (const [name, zone, gc, risk, verdict] of table) {
    const d = run(zone, gc)
    const f = d.findings[0]!
    t.same(
      f.gcRisk?.nodes.map((n) => `${n.node}:${n.usedPercent}`),
      risk,
      `${name}: at risk`,
    )
    t.equal(d.verdict, verdict, `${name}: verdict`)
  }
  t.equal(run('a', DEFAULT_IMAGE_GC, 'app:2').verdict, 'deny', 'a missing image is still denied, GC aside')
  t.end()
})

t.test('the warning names node, usage, threshold and how to protect the image', (t) => {
  const w = warningsFor(run('a'), subject)
  t.equal(w.length, 2)
  t.match(
    w.find((l) => l.startsWith('container')),
    'container "app": image "app:1" (imagePullPolicy: Never) is not pinned on full, whose image filesystem is 91% full (the kubelet\'s image GC starts at 85%): once unused it may be deleted and new pods fail with ErrImageNeverPull',
  )
  t.match(
    w.find((l) => l.startsWith('Protect')),
    'ctr -n k8s.io images label app:1 io.cri-containerd.pinned=pinned',
  )
  for (const l of w) t.ok([...l].length <= 256 && !/[\n\r]/.test(l), 'one line, at most 256 runes')
  const many = decide(index, {
    subject,
    template: { ...tpl('a'), placement: { tolerations: [] } },
    mode: 'enforce',
    now: NOW,
    imageGc: DEFAULT_IMAGE_GC,
  })
  t.same(
    many.findings[0]?.gcRisk?.nodes.map((n) => n.node),
    ['full', 'edge'],
    'fullest first, every eligible node at risk',
  )
  t.end()
})

t.test('a node whose usage drops is no longer at risk', (t) => {
  node('full', 'a', 60, [[APP, false]])
  t.equal(run('a').verdict, 'allow')
  t.end()
})

t.test('explain pod says when its node may collect the image', async (t) => {
  const { explainPod } = await import('../../src/inspect/explain.js')
  node('full', 'a', 93, [[APP, false]])
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'default' },
    spec: { nodeName: 'full', containers: [{ name: 'app', image: 'app:1', imagePullPolicy: 'Never' }] },
    status: { phase: 'Running' },
  }
  t.match(explainPod(pod, index, NOW), 'full: its image filesystem is 93% full and the image is not pinned')
  node('full', 'a', 93, [[APP, true]])
  t.notMatch(explainPod(pod, index, NOW), 'not pinned', 'pinned: nothing to say')
})
