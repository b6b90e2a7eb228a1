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

/** Set bits in a 32-bit word. */
export function popcount32(v: number): number {
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

/** How many slots are in both a and b (words past the shorter one count as zero). */
export function bitsCountAnd(a: Bits, b: Bits): number {
  return countAnd(a, b, Math.min(a.length, b.length))
}

/**
 * popcount(a & b) over the first n words, four words at a time through a carry-save adder
 * (Harley-Seal): one popcount per four words instead of one per word. Deciding a container
 * is this pass over the eligible words; it runs at about the speed of the bare loop.
 */
function countAnd(a: Bits, b: Bits, n: number): number {
  let fours = 0
  let twos = 0
  let ones = 0
  let i = 0
  for (; i + 4 <= n; i += 4) {
    const w0 = a[i]! & b[i]!
    const w1 = a[i + 1]! & b[i + 1]!
    const w2 = a[i + 2]! & b[i + 2]!
    const w3 = a[i + 3]! & b[i + 3]!
    // ones + w0 + w1 -> ones, twosA (carry); ones + w2 + w3 -> ones, twosB; twos + twosA + twosB -> twos, four.
    let u = ones ^ w0
    const twosA = (ones & w0) | (u & w1)
    ones = u ^ w1
    u = ones ^ w2
    const twosB = (ones & w2) | (u & w3)
    ones = u ^ w3
    u = twos ^ twosA
    const four = (twos & twosA) | (u & twosB)
    twos = u ^ twosB
    fours += popcount32(four)
  }
  let c = 4 * fours + 2 * popcount32(twos) + popcount32(ones)
  for (; i < n; i++) c += popcount32(a[i]! & b[i]!)
  return c
}

/** out = a & ~b (words of b past its length count as zero) and how many slots that is: one pass. */
export function bitsAndNotCount(a: Bits, b: Bits, out: Bits): number {
  const n = Math.min(a.length, out.length)
  const m = Math.min(n, b.length)
  let c = 0
  for (let i = 0; i < n; i++) {
    const v = i < m ? a[i]! & ~b[i]! : a[i]!
    out[i] = v
    if (v !== 0) c += popcount32(v)
  }
  return c
}

/** No slot: a bitset of no words (words past a bitset's length count as empty). */
export const NO_BITS: Bits = new Uint32Array(0)

/**
 * Writes the slots of `word` (word number w of a bitset), ascending, into out from n on,
 * until out is full; returns the new n. The inner walk of bitsFirst and bitsFirstIn.
 */
function takeSlots(word: number, w: number, out: Uint32Array, n: number): number {
  while (word !== 0 && n < out.length) {
    const low = word & -word
    out[n++] = (w << 5) + (31 - Math.clz32(low))
    word ^= low
  }
  return n
}

/**
 * The first slots of bits that are also in mask (words past mask's length count as zero),
 * ascending, written into out until it is full; returns how many. bitsFirst's walk, for an
 * intersection that is never written out.
 */
export function bitsFirstIn(bits: Bits, mask: Bits, out: Uint32Array): number {
  const limit = out.length
  if (limit === 0) return 0
  const end = Math.min(bits.length, mask.length)
  let n = 0
  for (let w = 0; w < end && n < limit; w++) n = takeSlots(bits[w]! & mask[w]!, w, out, n)
  return n
}

/**
 * The first slots of bits that are in neither `without` nor `without2` (words past their
 * length count as zero), ascending, written into out until it is full; returns how many.
 * Stops as soon as it has them: naming the first few nodes of a set walks only as far as
 * they are, a word at a time, with no callback.
 */
export function bitsFirst(bits: Bits, without: Bits | undefined, without2: Bits | undefined, out: Uint32Array): number {
  const limit = out.length
  if (limit === 0) return 0
  const a = without ?? NO_BITS
  const b = without2 ?? NO_BITS
  let n = 0
  for (let w = 0; w < bits.length; w++) {
    let word = bits[w]!
    if (word === 0) continue
    if (w < a.length) word &= ~a[w]!
    if (w < b.length) word &= ~b[w]!
    n = takeSlots(word, w, out, n)
    if (n === limit) return n
  }
  return n
}

/** Most slots a set keeps as a list; past that it is a bitset. */
const SPARSE_LIMIT = 64

/** Block sizes (in slots) a list may take in its pool, smallest first; the last is SPARSE_LIMIT. */
const BLOCKS = [4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, SPARSE_LIMIT] as const

/** The size class of the smallest block holding `size` slots. */
function blockClass(size: number): number {
  let c = 0
  while (BLOCKS[c]! < size) c++
  return c
}

const NO_SLOTS = new Uint16Array(0)
const NO_STARTS = new Int32Array(0)
const NO_CLASSES = new Uint8Array(0)

/**
 * Storage for the lists of many NodeSets: one typed array carved into blocks. A typed array
 * per set cost about 400 bytes of V8 objects and malloc bookkeeping besides its data (the
 * inventory holds one set per image key, 60,000 at 5,000 nodes x 200 images); here a list
 * costs its slots, 2 bytes each while every slot fits in 16 bits (4 after). A set's block is
 * named by a handle, so moving blocks never touches the sets. Freed blocks are reused by size
 * class (classes 4 slots apart up to 32, 8 after, so a list wastes little of its block);
 * when the array is full, the live blocks are copied into a new array 1.5 times what they
 * need, which drops the freed ones (a copying collector: amortised constant cost per slot
 * allocated, and the array stays within about 1.5 times the live blocks).
 */
export class SlotPool {
  // A pool starts with nothing of its own (a NodeSet made without one, for one request's
  // answer, makes a pool of its own): the empty arrays are shared and replaced on first use.
  /** The lists, block after block. Read through a NodeSet; valid until the next write. */
  private data: Uint16Array | Uint32Array = NO_SLOTS
  private top = 0
  /** Per handle, its block's first index in data, or -1 for a handle not in use. */
  private starts = NO_STARTS
  /** Per handle, its block's size class. */
  private classes = NO_CLASSES
  private handles = 0
  private readonly spareHandles: number[] = []
  /** Per size class, freed blocks (their first index); made when first needed. */
  private readonly spare: Array<number[] | undefined> = []

  /** The array the lists live in; re-read it after any write to any set of the pool. */
  get slots(): Uint16Array | Uint32Array {
    return this.data
  }

  /** Where handle h's list starts in `slots`. */
  start(h: number): number {
    return this.starts[h]!
  }

  /** How many slots handle h's block holds. */
  capacity(h: number): number {
    return BLOCKS[this.classes[h]!]!
  }

  /** A new handle with a block of the smallest size. */
  open(): number {
    let h = this.spareHandles.pop()
    if (h === undefined) {
      h = this.handles++
      if (h >= this.starts.length) {
        const size = Math.max(16, this.starts.length * 2)
        const starts = new Int32Array(size)
        starts.set(this.starts)
        const classes = new Uint8Array(size)
        classes.set(this.classes)
        this.starts = starts
        this.classes = classes
      }
    }
    this.starts[h] = -1
    this.place(h, 0)
    return h
  }

  /** Gives back handle h and its block. */
  close(h: number): void {
    this.spareBlock(this.classes[h]!, this.starts[h]!)
    this.starts[h] = -1
    this.spareHandles.push(h)
  }

  /** Moves handle h's list (its first `used` slots) into a block of at least `size` slots. */
  reserve(h: number, size: number, used: number): void {
    const c = blockClass(size)
    if (c <= this.classes[h]!) return
    const from = this.starts[h]!
    const old = this.classes[h]!
    // Out of the collector's sight while it moves: copy after placing, from the saved data.
    this.starts[h] = -1
    const before = this.data
    const compacted = this.place(h, c)
    // place() may have compacted: then the list was left behind in `before`, at `from`.
    const to = this.starts[h]
    this.data.set(before.subarray(from, from + used), to)
    if (!compacted) this.spareBlock(old, from)
  }

  /** Writes slot at position i of handle h's list. */
  write(h: number, i: number, slot: number): void {
    if (slot > 0xffff && this.data instanceof Uint16Array) this.data = Uint32Array.from(this.data)
    this.data[this.starts[h]! + i] = slot
  }

  private spareBlock(c: number, start: number): void {
    let list = this.spare[c]
    if (list === undefined) this.spare[c] = list = []
    list.push(start)
  }

  /**
   * Gives handle h (whose start is -1) a block of class c. Returns true when it compacted
   * the array instead of only allocating (the blocks freed so far are gone then).
   */
  private place(h: number, c: number): boolean {
    const size = BLOCKS[c]!
    this.classes[h] = c
    const reused = this.spare[c]?.pop()
    if (reused !== undefined) {
      this.starts[h] = reused
      return false
    }
    let compacted = false
    if (this.top + size > this.data.length) {
      this.compact(size)
      compacted = true
    }
    this.starts[h] = this.top
    this.top += size
    return compacted
  }

  /** Copies the live blocks, in handle order, into a new array with room for `more` slots. */
  private compact(more: number): void {
    let live = more
    for (let h = 0; h < this.handles; h++) if (this.starts[h]! >= 0) live += BLOCKS[this.classes[h]!]!
    const old = this.data
    const size = Math.ceil(live * 1.5)
    const data = old instanceof Uint16Array ? new Uint16Array(size) : new Uint32Array(size)
    let top = 0
    for (let h = 0; h < this.handles; h++) {
      const from = this.starts[h]!
      if (from < 0) continue
      const block = BLOCKS[this.classes[h]!]!
      for (let i = 0; i < block; i++) data[top + i] = old[from + i]!
      this.starts[h] = top
      top += block
    }
    this.data = data
    this.top = top
    this.spare.length = 0
  }
}

/**
 * A set of node slots that grows from a list into a bitset. The list form keeps the
 * inventory small when an image sits on few nodes (the common case); the lists of the
 * index's sets share one SlotPool.
 */
export class NodeSet {
  private readonly pool: SlotPool
  /** The list's handle in the pool, -1 when the set has no list (empty, or dense). */
  private list = -1
  private dense: Bits | null = null
  private n = 0

  /** A set whose list lives in `pool`; without one, in a pool of its own. */
  constructor(pool?: SlotPool) {
    this.pool = pool ?? new SlotPool()
  }

  get size(): number {
    return this.n
  }

  /** A set holding the slots of bits (copied: the set owns its storage). */
  static fromBits(bits: Bits, pool?: SlotPool): NodeSet {
    const set = new NodeSet(pool)
    const n = bitsCount(bits)
    if (n > SPARSE_LIMIT) {
      set.dense = Uint32Array.from(bits)
      set.n = n
    } else bitsForEach(bits, (slot) => void set.add(slot))
    return set
  }

  has(slot: number): boolean {
    if (this.dense !== null) return bitsHas(this.dense, slot)
    return this.indexOf(slot) >= 0
  }

  add(slot: number): void {
    if (this.has(slot)) return
    if (this.dense !== null) {
      this.n++
      this.growTo(slot)
      bitsSet(this.dense, slot)
      return
    }
    const pool = this.pool
    if (this.n === SPARSE_LIMIT) {
      let max = slot
      const data = pool.slots
      const at = pool.start(this.list)
      for (let i = 0; i < this.n; i++) if (data[at + i]! > max) max = data[at + i]!
      const dense = new Uint32Array(wordsFor(max + 1))
      for (let i = 0; i < this.n; i++) bitsSet(dense, data[at + i]!)
      bitsSet(dense, slot)
      pool.close(this.list)
      this.list = -1
      this.dense = dense
      this.n++
      return
    }
    if (this.list < 0) this.list = pool.open()
    else if (this.n === pool.capacity(this.list)) pool.reserve(this.list, this.n + 1, this.n)
    pool.write(this.list, this.n++, slot)
  }

  delete(slot: number): void {
    if (this.dense !== null) {
      if (!bitsHas(this.dense, slot)) return
      this.n--
      bitsClear(this.dense, slot)
      return
    }
    const i = this.indexOf(slot)
    if (i < 0) return
    const last = --this.n
    if (last === 0) {
      this.pool.close(this.list)
      this.list = -1
      return
    }
    // The last slot takes the deleted one's place (as it always has: forEach order depends on it).
    this.pool.write(this.list, i, this.pool.slots[this.pool.start(this.list) + last]!)
  }

  /** Empties the set and gives its list back to the pool. */
  clear(): void {
    if (this.list >= 0) this.pool.close(this.list)
    this.list = -1
    this.dense = null
    this.n = 0
  }

  /** target |= this */
  orInto(target: Bits): void {
    if (this.dense !== null) {
      bitsOr(target, this.dense)
      return
    }
    if (this.n === 0) return
    const data = this.pool.slots
    const at = this.pool.start(this.list)
    for (let i = at, end = at + this.n; i < end; i++) if (data[i]! >>> 5 < target.length) bitsSet(target, data[i]!)
  }

  /** How many slots of this set are also in mask. */
  countIn(mask: Bits): number {
    let c = 0
    if (this.dense === null) {
      if (this.n === 0) return 0
      const data = this.pool.slots
      const at = this.pool.start(this.list)
      for (let i = at, end = at + this.n; i < end; i++) if (bitsHas(mask, data[i]!)) c++
      return c
    }
    return countAnd(mask, this.dense, Math.min(mask.length, this.dense.length))
  }

  /**
   * The set as a bitset when it is one (past SPARSE_LIMIT slots), else null: read it, never
   * write it; valid until the set's next write. Lets a caller mask with the set itself
   * instead of copying an intersection out.
   */
  get bits(): Bits | null {
    return this.dense
  }

  /** Writes this ∩ mask into out (out is cleared first). */
  intersectInto(mask: Bits, out: Bits): void {
    out.fill(0)
    if (this.dense === null) {
      if (this.n === 0) return
      const data = this.pool.slots
      const at = this.pool.start(this.list)
      for (let i = at, end = at + this.n; i < end; i++) if (bitsHas(mask, data[i]!)) bitsSet(out, data[i]!)
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
      if (this.n === 0) return
      const data = this.pool.slots
      const at = this.pool.start(this.list)
      for (let i = at, end = at + this.n; i < end; i++) {
        if (!bitsHas(mask, data[i]!) && out.push(data[i]!) >= limit) return
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
    if (this.dense !== null) {
      bitsForEach(this.dense, fn)
      return
    }
    // fn may write to another set of the pool, which can move every list: re-read each time.
    for (let i = 0; i < this.n; i++) fn(this.pool.slots[this.pool.start(this.list) + i]!)
  }

  private indexOf(slot: number): number {
    if (this.n === 0) return -1
    const data = this.pool.slots
    const at = this.pool.start(this.list)
    for (let i = 0; i < this.n; i++) if (data[at + i] === slot) return i
    return -1
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
