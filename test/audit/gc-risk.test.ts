import t from 'tap'
import { assess, EVENT_REASON, GC_EVENT_REASON } from '../../src/audit/audit.js'
import { DEFAULT_IMAGE_GC } from '../../src/api/image-gc.js'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'
import { createMetrics } from '../../src/server/metrics.js'
import { NOW, nodeFacts, runtimeImage, STALE_MS } from '../helpers/inventory.js'

// The audit raises GC risk for running and scaled-to-zero workloads: the image is there now,
// but the kubelet's image garbage collector may delete it.

const APP = 'docker.io/library/myapp:1.0'
function index(usedPercent: number, pinned = false): InventoryIndex {
  const ix = new InventoryIndex({ staleAfterMs: STALE_MS })
  ix.upsertNode(nodeFacts({ name: 'a' }))
  ix.upsertImages({
    nodeName: 'a',
    images: [{ ...runtimeImage(APP), pinned }],
    observedAt: NOW - 60_000,
    imageFilesystem: { usedBytes: 1, capacityBytes: 100, availableBytes: 100 - usedPercent, usedPercent },
  })
  return ix
}
const deployment = (replicas?: number) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'shop', uid: 'uid-web' },
  spec: {
    ...(replicas === undefined ? {} : { replicas }),
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: { containers: [{ name: 'app', image: 'myapp:1.0', imagePullPolicy: 'Never' }] },
    },
  },
})
const target = (obj: ReturnType<typeof deployment>) => ({
  apiVersion: obj.apiVersion,
  kind: obj.kind,
  namespace: 'shop',
  name: 'web',
  uid: 'uid-web',
  object: obj,
})

t.test('the table', (t) => {
  const week = { ...DEFAULT_IMAGE_GC, maximumAgeMs: 7 * 24 * 3_600_000 }
  const table: Array<
    [string, InventoryIndex, number | undefined, typeof DEFAULT_IMAGE_GC | undefined, string | null, RegExp | null]
  > = [
    [
      'running, node at 91%, unpinned',
      index(91),
      undefined,
      DEFAULT_IMAGE_GC,
      GC_EVENT_REASON,
      /not pinned on a, whose image filesystem is 91% full \(the kubelet's image GC starts at 85%\)/,
    ],
    ['running, node at 50%', index(50), undefined, DEFAULT_IMAGE_GC, null, null],
    ['pinned', index(95, true), undefined, DEFAULT_IMAGE_GC, null, null],
    ['without the settings', index(95), undefined, undefined, null, null],
    ['scaled to zero, node at 91%', index(91), 0, DEFAULT_IMAGE_GC, GC_EVENT_REASON, /not pinned on a/],
    [
      'scaled to zero, maximum GC age set',
      index(10),
      0,
      week,
      GC_EVENT_REASON,
      /unused while scaled to zero, the kubelet deletes it after 7 days \(--image-maximum-gc-age\)/,
    ],
    ['running, maximum GC age set: in use, kept', index(10), undefined, week, null, null],
    ['scaled to zero, maximum GC age off', index(10), 0, DEFAULT_IMAGE_GC, null, null],
  ]
  for (const [name, ix, replicas, gc, reason, message] of table) {
    const risk = assess(ix, target(deployment(replicas)), NOW, gc)
    t.equal(risk?.reason ?? null, reason, `${name}: reason`)
    if (message !== null) t.match(risk?.message, message, `${name}: message`)
    if (risk !== null)
      t.ok(risk.message.length <= 1000 && risk.message.includes('io.cri-containerd.pinned=pinned'), `${name}: fix`)
  }
  const missing = assess(
    index(91),
    target({
      ...deployment(),
      spec: {
        ...deployment().spec,
        template: {
          ...deployment().spec.template,
          spec: { containers: [{ name: 'app', image: 'myapp:2.0', imagePullPolicy: 'Never' }] },
        },
      },
    }),
    NOW,
    DEFAULT_IMAGE_GC,
  )
  t.equal(missing?.reason, EVENT_REASON, 'missing outranks GC risk')
  t.end()
})

t.test('the metric: GC-risk objects by kind, reset when leadership is lost', async (t) => {
  const metrics = createMetrics({ inventory: index(10), now: () => NOW, processMetrics: false })
  metrics.auditPass({ checked: 3, atRisk: 2, events: 2, byKind: { Deployment: 2 }, gcRiskByKind: { Deployment: 1 } })
  let text = await metrics.registry.metrics()
  t.match(text, /neverpull_audit_gc_risk_objects\{kind="Deployment"\} 1/)
  metrics.auditLeader(false)
  text = await metrics.registry.metrics()
  t.notMatch(text, /neverpull_audit_gc_risk_objects\{/)
})
