// Sets of node slots. A cluster has up to 5,000 nodes, so a dense bitset is 157 words; most
// images sit on a handful of nodes, so an image's node set starts sparse (a short list of
// slots) and turns dense only once a list would cost more than the bitset.

export type Bits = Uint32Array

export function wordsFor(capacity: number): number {
  return (capacity + 31) >>> 5
}

export function bitsHas(bits: Bits, slot: number): boolean {
  const w = slot >>> 5
  return w < bits.length && ((bits[w]! >>> (slot & 31)) & 1) === 1
}

export function bitsSet(bits: Bits, slot: number): void {
  const w = slot >>> 5
  bits[w] = bits[w]! | (1 << (slot & 31))
}

export function bitsClear(bits: Bits, slot: number): void {
  const w = slot >>> 5
  if (w < bits.length) bits[w] = bits[w]! & ~(1 << (slot & 31))
}

function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555)
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333)
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24
}

export function bitsCount(bits: Bits): number {
  let n = 0
  for (let i = 0; i < bits.length; i++) n += popcount32(bits[i]!)
  return n
}

export function bitsIsEmpty(bits: Bits): boolean {
  for (let i = 0; i < bits.length; i++) if (bits[i] !== 0) return false
  return true
}

/** target &= other (words past other's length count as zero). */
export function bitsAnd(target: Bits, other: Bits): void {
  const n = Math.min(target.length, other.length)
  for (let i = 0; i < n; i++) target[i] = target[i]! & other[i]!
  for (let i = n; i < target.length; i++) target[i] = 0
}

/** target |= other */
export function bitsOr(target: Bits, other: Bits): void {
  const n = Math.min(target.length, other.length)
  for (let i = 0; i < n; i++) target[i] = target[i]! | other[i]!
}

/** target &= ~other */
export function bitsAndNot(target: Bits, other: Bits): void {
  const n = Math.min(target.length, other.length)
  for (let i = 0; i < n; i++) target[i] = target[i]! & ~other[i]!
}

/** Calls fn for every slot in bits, in ascending order, until fn returns false. */
export function bitsForEach(bits: Bits, fn: (slot: number) => boolean | void): void {
  for (let w = 0; w < bits.length; w++) {
    let word = bits[w]!
    while (word !== 0) {
      const low = word & -word
      const slot = (w << 5) + (31 - Math.clz32(low))
      if (fn(slot) === false) return
      word ^= low
    }
  }
}

const SPARSE_LIMIT = 64

/**
 * A set of node slots that grows from a list into a bitset. The list form keeps the
 * inventory small when an image sits on few nodes (the common case).
 */
export class NodeSet {
  // The list form is a typed array (4 bytes a slot, not a boxed-array element).
  private sparse: Uint32Array | null = new Uint32Array(4)
  private dense: Bits | null = null
  private n = 0

  get size(): number {
    return this.n
  }

  /** A set holding the slots of bits (copied: the set owns its storage). */
  static fromBits(bits: Bits): NodeSet {
    const set = new NodeSet()
    const n = bitsCount(bits)
    if (n > SPARSE_LIMIT) {
      set.sparse = null
      set.dense = Uint32Array.from(bits)
      set.n = n
    } else bitsForEach(bits, (slot) => void set.add(slot))
    return set
  }

  has(slot: number): boolean {
    if (this.dense !== null) return bitsHas(this.dense, slot)
    const list = this.sparse!
    for (let i = 0; i < this.n; i++) if (list[i] === slot) return true
    return false
  }

  add(slot: number): void {
    if (this.has(slot)) return
    this.n++
    if (this.dense !== null) {
      this.growTo(slot)
      bitsSet(this.dense, slot)
      return
    }
    let list = this.sparse!
    if (this.n > list.length) {
      const grown = new Uint32Array(Math.min(SPARSE_LIMIT + 1, list.length * 2))
      grown.set(list)
      this.sparse = list = grown
    }
    list[this.n - 1] = slot
    if (this.n > SPARSE_LIMIT) {
      let max = 0
      for (let i = 0; i < this.n; i++) if (list[i]! > max) max = list[i]!
      const dense = new Uint32Array(wordsFor(max + 1))
      for (let i = 0; i < this.n; i++) bitsSet(dense, list[i]!)
      this.dense = dense
      this.sparse = null
    }
  }

  delete(slot: number): void {
    if (!this.has(slot)) return
    this.n--
    if (this.dense !== null) {
      bitsClear(this.dense, slot)
      return
    }
    const list = this.sparse!
    const i = list.indexOf(slot)
    list[i] = list[this.n]!
  }

  /** target |= this */
  orInto(target: Bits): void {
    if (this.dense !== null) {
      bitsOr(target, this.dense)
      return
    }
    const list = this.sparse!
    for (let i = 0; i < this.n; i++) if (list[i]! >>> 5 < target.length) bitsSet(target, list[i]!)
  }

  /** How many slots of this set are also in mask. */
  countIn(mask: Bits): number {
    if (this.dense === null) {
      let c = 0
      const list = this.sparse!
      for (let i = 0; i < this.n; i++) if (bitsHas(mask, list[i]!)) c++
      return c
    }
    let c = 0
    const n = Math.min(mask.length, this.dense.length)
    for (let i = 0; i < n; i++) c += popcount32(mask[i]! & this.dense[i]!)
    return c
  }

  /** Writes this ∩ mask into out (out is cleared first). */
  intersectInto(mask: Bits, out: Bits): void {
    out.fill(0)
    if (this.dense === null) {
      const list = this.sparse!
      for (let i = 0; i < this.n; i++) if (bitsHas(mask, list[i]!)) bitsSet(out, list[i]!)
      return
    }
    const n = Math.min(mask.length, this.dense.length, out.length)
    for (let i = 0; i < n; i++) out[i] = mask[i]! & this.dense[i]!
  }

  /**
   * Up to `limit` slots of this set that are not in mask, in iteration order (the order forEach
   * gives), pushed onto out; stops as soon as it has them.
   */
  firstOutside(mask: Bits, limit: number, out: number[]): void {
    if (limit <= 0) return
    if (this.dense === null) {
      for (let i = 0, list = this.sparse!; i < this.n; i++) {
        if (!bitsHas(mask, list[i]!) && out.push(list[i]!) >= limit) return
      }
      return
    }
    const dense = this.dense
    for (let w = 0; w < dense.length; w++) {
      let word = w < mask.length ? dense[w]! & ~mask[w]! : dense[w]!
      while (word !== 0) {
        const low = word & -word
        if (out.push((w << 5) + (31 - Math.clz32(low))) >= limit) return
        word ^= low
      }
    }
  }

  forEach(fn: (slot: number) => void): void {
    if (this.dense !== null) bitsForEach(this.dense, fn)
    else for (let i = 0, list = this.sparse!; i < this.n; i++) fn(list[i]!)
  }

  private growTo(slot: number): void {
    const need = wordsFor(slot + 1)
    if (this.dense!.length >= need) return
    const next = new Uint32Array(Math.max(need, this.dense!.length * 2))
    next.set(this.dense!)
    this.dense = next
  }
}

/**
 * Working bitsets for synchronous code that runs to completion (placement, decide): reused
 * across calls instead of allocated per request. One instance belongs to one index, so no
 * module holds mutable state; each user takes the roles it documents.
 */
export class ScratchBits {
  private readonly pool: Array<Uint32Array | undefined> = []

  /** The bitset for a role, `words` long, contents undefined: the caller initialises it. */
  get(role: number, words: number): Uint32Array {
    let bits = this.pool[role]
    if (bits === undefined || bits.length !== words) {
      bits = new Uint32Array(words)
      this.pool[role] = bits
    }
    return bits
  }
}
