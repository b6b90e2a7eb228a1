import { createHash } from 'node:crypto'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'
import type { NodeFacts, RuntimeImage, Taint } from '../../src/api/types.js'

export const NOW = Date.parse('2026-11-21T06:00:00Z')
export const STALE_MS = 15 * 60_000

export interface NodeSpec {
  name: string
  labels?: Record<string, string>
  taints?: Taint[]
  unschedulable?: boolean
  /** Normalised tags or digests as containerd lists them; undefined = no NodeImageSet. */
  images?: string[]
  /** How long ago the image list was observed (ms); default 1 minute. */
  age?: number
  statusImages?: string[]
}

export function digestOf(s: string): string {
  return 'sha256:' + createHash('sha256').update(s).digest('hex')
}

/** A runtime image as containerd lists it for one reference (tag or digest form). */
export function runtimeImage(ref: string): RuntimeImage {
  const at = ref.indexOf('@')
  if (at >= 0) return { id: digestOf(`id:${ref}`), repoTags: [], repoDigests: [ref], size: 1000, pinned: false }
  const repo = ref.slice(0, ref.lastIndexOf(':'))
  return {
    id: digestOf(`id:${ref}`),
    repoTags: [ref],
    repoDigests: [`${repo}@${digestOf(`manifest:${ref}`)}`],
    size: 1000,
    pinned: false,
  }
}

export function nodeFacts(spec: NodeSpec): NodeFacts {
  return {
    name: spec.name,
    labels: { 'kubernetes.io/hostname': spec.name, ...(spec.labels ?? {}) },
    taints: spec.taints ?? [],
    unschedulable: spec.unschedulable ?? false,
    ready: true,
    statusImageNames: spec.statusImages ?? [],
  }
}

export function buildIndex(specs: NodeSpec[], now = NOW): InventoryIndex {
  const index = new InventoryIndex({ staleAfterMs: STALE_MS })
  for (const spec of specs) {
    index.upsertNode(nodeFacts(spec))
    if (spec.images !== undefined) {
      index.upsertImages({
        nodeName: spec.name,
        images: spec.images.map(runtimeImage),
        observedAt: now - (spec.age ?? 60_000),
      })
    }
  }
  return index
}
