// Sorted lists of small unsigned ids (the inventory's interned key ids), plain or packed.

/** The ids sorted ascending, each once. */
export function sortedIds(ids: number[]): Uint32Array {
  const sorted = Uint32Array.from(ids).sort()
  let n = 0
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[n - 1]) sorted[n++] = sorted[i]!
  return n === sorted.length ? sorted : sorted.slice(0, n)
}

/**
 * A sorted list of key ids, packed: each id as its gap from the one before, in LEB128 (7 bits
 * a byte, the high bit set on all but an id's last byte). The keys of a node's image (its ID,
 * tags and digests) are interned together, so most gaps are 1 and an id costs 1-2 bytes
 * instead of 4: a NodeImageSet of 200 images is 600 ids, 5,000 nodes hold 3 million.
 */
export type PackedIds = Uint8Array

const NO_PACKED: PackedIds = new Uint8Array(0)

/** The sorted, distinct ids packed. */
export function packIds(sorted: Uint32Array): PackedIds {
  if (sorted.length === 0) return NO_PACKED
  let bytes = 0
  for (let i = 0, prev = 0; i < sorted.length; i++) {
    let gap = sorted[i]! - prev
    prev = sorted[i]!
    do bytes++
    while ((gap = Math.floor(gap / 0x80)) !== 0)
  }
  const out = new Uint8Array(bytes)
  let at = 0
  for (let i = 0, prev = 0; i < sorted.length; i++) {
    let gap = sorted[i]! - prev
    prev = sorted[i]!
    while (gap >= 0x80) {
      out[at++] = (gap & 0x7f) | 0x80
      gap = Math.floor(gap / 0x80)
    }
    out[at++] = gap
  }
  return out
}

/** The ids of a packed list, in order. */
export function unpackIds(packed: PackedIds): Uint32Array {
  let n = 0
  for (let i = 0; i < packed.length; i++) if (packed[i]! < 0x80) n++
  const out = new Uint32Array(n)
  let id = 0
  let gap = 0
  let scale = 1
  for (let i = 0, k = 0; i < packed.length; i++) {
    const b = packed[i]!
    gap += (b & 0x7f) * scale
    if (b < 0x80) {
      id += gap
      out[k++] = id
      gap = 0
      scale = 1
    } else scale *= 0x80
  }
  return out
}

/** Whether a packed list holds the id: a walk that stops at the first id not below it. */
export function packedHas(packed: PackedIds, wanted: number): boolean {
  let id = 0
  let gap = 0
  let scale = 1
  for (let i = 0; i < packed.length; i++) {
    const b = packed[i]!
    gap += (b & 0x7f) * scale
    if (b < 0x80) {
      id += gap
      if (id >= wanted) return id === wanted
      gap = 0
      scale = 1
    } else scale *= 0x80
  }
  return false
}

/** Whether a sorted list holds the id: a binary search. */
export function hasId(sorted: Uint32Array, id: number): boolean {
  let lo = 0
  let hi = sorted.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const v = sorted[mid]!
    if (v === id) return true
    if (v < id) lo = mid + 1
    else hi = mid - 1
  }
  return false
}
