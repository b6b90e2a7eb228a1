import { checkPodReview } from '../src/admission/pod-check.js'
import { decide, type DecideInput } from '../src/decision/decide.js'
import { InventoryIndex } from '../src/inventory/inventory-index.js'
import type { NodeImages } from '../src/api/types.js'
import { extractPodTemplate } from '../src/workload/pod-template.js'
import type { Body } from './bodies.js'
import { hex64, loadCluster, nodeImages, type ClusterSpec, type Layout } from './inventory.js'

// In-process micro-benchmarks, each call timed alone with process.hrtime.bigint after a
// warm-up, many iterations: decide() over growing clusters, and one node's NodeImageSet
// update applied to a 5,000-node index.

/** The synthetic cluster loaded into a fresh index, in this process. */
export function buildIndex(
  spec: ClusterSpec,
  observedAt: number,
  staleAfterMs = 15 * 60_000,
): { index: InventoryIndex; layout: Layout } {
  const index = new InventoryIndex({ staleAfterMs })
  return { index, layout: loadCluster(index, spec, observedAt) }
}

export interface Stats {
  n: number
  medianUs: number
  p99Us: number
  meanUs: number
}

export function stats(ns: Float64Array): Stats {
  const sorted = Float64Array.from(ns).sort()
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! / 1000
  let sum = 0
  for (const v of sorted) sum += v
  return { n: sorted.length, medianUs: at(0.5), p99Us: at(0.99), meanUs: sum / sorted.length / 1000 }
}

/** Times fn alone, iterations times, after warmup untimed calls. */
export function time(fn: () => unknown, iterations: number, warmup: number): Stats {
  let sink: unknown
  for (let i = 0; i < warmup; i++) sink = fn()
  const out = new Float64Array(iterations)
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint()
    sink = fn()
    out[i] = Number(process.hrtime.bigint() - t0)
  }
  if (sink === Symbol.for('never')) console.log(sink)
  return stats(out)
}

export interface PathResult {
  body: string
  expect: Body['expect']
  /** decide() alone on the extracted template. */
  decide: Stats
  /** checkPodReview on the parsed review: extraction, decide, messages, reply object. */
  handle: Stats
  verdict: string
}

export interface DecideResult {
  nodes: number
  words: number
  paths: PathResult[]
}

function templateOf(body: Body): { review: unknown; input: (now: number) => DecideInput } {
  const review = JSON.parse(body.payload) as {
    request: { kind: { kind: string }; namespace: string; name: string; operation: string; object: unknown }
  }
  const r = review.request
  const extracted = extractPodTemplate(r.kind.kind, r.object)
  if (!extracted.ok || extracted.template === null) throw new Error(`${body.name}: no pod template`)
  const template = extracted.template
  return {
    review,
    input: (now) => ({
      subject: { kind: r.kind.kind, namespace: r.namespace, name: r.name, operation: r.operation },
      template,
      mode: 'enforce',
      now,
    }),
  }
}

/**
 * decide() and checkPodReview on each body, over growing clusters. The deny path ranks "did you
 * mean" candidates, so it gets fewer iterations; every path is timed at every size.
 */
export function decideBench(
  sizes: number[],
  bodies: Body[],
  iterations: number,
  log: (l: string) => void,
): DecideResult[] {
  const out: DecideResult[] = []
  const now = Date.now()
  const prepared = bodies.map((b) => ({ body: b, ...templateOf(b) }))
  for (const nodes of sizes) {
    const { index } = buildIndex({ nodes, imagesPerNode: 200, distinctImages: 20_000 }, now)
    const paths: PathResult[] = []
    for (const p of prepared) {
      const input = p.input(now)
      const verdict = decide(index, input).verdict
      const n =
        p.body.expect === 'deny'
          ? Math.max(300, iterations / 20)
          : p.body.expect === 'warn'
            ? iterations / 4
            : iterations
      const decideStats = time(() => decide(index, input), n, Math.min(20_000, n))
      const handle = time(
        () => checkPodReview(p.review, { inventory: index, mode: 'enforce', now }),
        n / 2,
        Math.min(10_000, n / 2),
      )
      paths.push({ body: p.body.name, expect: p.body.expect, decide: decideStats, handle, verdict })
    }
    out.push({ nodes, words: index.words, paths })
    log(`  ${String(nodes).padStart(5)} nodes (${String(index.words).padStart(3)} words):`)
    for (const p of paths) {
      log(
        `    ${p.body.padEnd(26)} ${p.verdict.padEnd(5)} decide median ${p.decide.medianUs.toFixed(2)} µs p99 ${p.decide.p99Us.toFixed(2)} µs | checkPodReview median ${p.handle.medianUs.toFixed(2)} µs p99 ${p.handle.p99Us.toFixed(2)} µs`,
      )
    }
  }
  return out
}

export interface UpdateResult {
  nodes: number
  imagesPerNode: number
  changedImages: number
  update: Stats
  /** Loading the whole cluster, one upsertNode + upsertImages per node. */
  loadMs: number
}

/**
 * The node's next image list: every image replaced by a new release of the same repository
 * (new tag, digest and ID), so the update removes 200 images and adds 200, as a node does
 * when a rollout replaces everything it runs.
 */
function bumped(set: NodeImages, salt: number): NodeImages {
  return {
    ...set,
    images: set.images.map((img, k) => {
      const tag = img.repoTags[0]!
      const repo = tag.slice(0, tag.lastIndexOf(':'))
      return {
        ...img,
        id: `sha256:${hex64(7 + salt, k)}`,
        repoTags: [`${repo}:next-${salt}-${k}`],
        repoDigests: [`${repo}@sha256:${hex64(8 + salt, k)}`],
      }
    }),
  }
}

export function updateBench(index: InventoryIndex, layout: Layout, loadMs: number, iterations: number): UpdateResult {
  const now = Date.now()
  // 40 nodes spread over the cluster, each flipping between its list and a bumped one.
  const picks = Array.from({ length: 40 }, (_, k) => Math.floor((k * layout.spec.nodes) / 40) + 3)
  const texts = picks.map((i) => {
    const base = nodeImages(layout, i, now)
    return [JSON.stringify(bumped(base, 0)), JSON.stringify(base)] as const
  })
  const ns = new Float64Array(iterations)
  const warm = Math.min(200, iterations)
  for (let it = -warm; it < iterations; it++) {
    const k = ((it + warm) >>> 1) % picks.length
    const text = texts[k]![(it + warm) & 1]!
    // A fresh object per event, as the informer's JSON.parse gives: no string hash cached.
    const set = JSON.parse(text) as NodeImages
    const t0 = process.hrtime.bigint()
    index.upsertImages(set)
    const dt = Number(process.hrtime.bigint() - t0)
    if (it >= 0) ns[it] = dt
  }
  return {
    nodes: layout.spec.nodes,
    imagesPerNode: layout.spec.imagesPerNode,
    changedImages: layout.spec.imagesPerNode,
    update: stats(ns),
    loadMs,
  }
}
