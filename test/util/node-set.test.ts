import t from 'tap'
import {
  bitsAndNotCount,
  bitsCount,
  bitsCountAnd,
  bitsFirst,
  bitsFirstIn,
  bitsForEach,
  bitsHas,
  bitsSet,
  NodeSet,
  SlotPool,
  wordsFor,
} from '../../src/util/node-set.js'

t.test('a NodeSet stays a list for few nodes and turns into a bitset for many, with the same answers', async (t) => {
  const set = new NodeSet()
  const mask = new Uint32Array(wordsFor(400))
  for (let s = 0; s < 400; s += 3) bitsSet(mask, s)
  const expected = new Set<number>()
  for (let s = 0; s < 300; s += 2) {
    set.add(s)
    expected.add(s)
    t.equal(set.size, expected.size)
  }
  set.add(4) // duplicate
  t.equal(set.size, expected.size, 'adding twice counts once')
  for (const s of [0, 2, 298, 150]) {
    set.delete(s)
    expected.delete(s)
  }
  set.delete(1) // absent
  t.equal(set.size, expected.size)
  let inMask = 0
  for (const s of expected) if (s % 3 === 0) inMask++
  t.equal(set.countIn(mask), inMask, 'countIn agrees with a plain Set')
  const out = new Uint32Array(wordsFor(400))
  set.intersectInto(mask, out)
  t.equal(bitsCount(out), inMask)
  const seen: number[] = []
  set.forEach((s) => seen.push(s))
  t.same(
    seen.sort((a, b) => a - b),
    [...expected].sort((a, b) => a - b),
  )
  t.ok(set.has(4) && !set.has(0) && !set.has(399))
})

t.test('sparse sets answer countIn and has the same way', async (t) => {
  const set = new NodeSet()
  set.add(70)
  set.add(3)
  const mask = new Uint32Array(wordsFor(128))
  bitsSet(mask, 70)
  t.equal(set.countIn(mask), 1)
  set.delete(70)
  t.equal(set.countIn(mask), 0)
  t.equal(set.size, 1)
})

t.test('bitsForEach visits ascending slots and stops when asked', async (t) => {
  const bits = new Uint32Array(3)
  for (const s of [0, 31, 32, 63, 95]) bitsSet(bits, s)
  const seen: number[] = []
  bitsForEach(bits, (s) => {
    seen.push(s)
  })
  t.same(seen, [0, 31, 32, 63, 95])
  const first: number[] = []
  bitsForEach(bits, (s) => {
    first.push(s)
    return first.length < 2
  })
  t.same(first, [0, 31])
  t.notOk(bitsHas(bits, 1))
  t.notOk(bitsHas(bits, 10_000), 'slots past the end are absent')
})

t.test('firstOutside gives the first slots not in the mask, in forEach order, and stops at the limit', async (t) => {
  for (const size of [10, 200]) {
    const set = new NodeSet()
    for (let s = 0; s < size; s++) set.add(s * 3)
    const mask = new Uint32Array(wordsFor(size * 3))
    for (let s = 0; s < size * 3; s += 2) bitsSet(mask, s)
    const all: number[] = []
    set.forEach((s) => {
      if (!bitsHas(mask, s)) all.push(s)
    })
    for (const limit of [0, 1, 3, all.length + 5]) {
      const out: number[] = []
      set.firstOutside(mask, limit, out)
      t.same(out, all.slice(0, limit), `${size} slots, limit ${limit}`)
    }
    const short: number[] = []
    set.firstOutside(Uint32Array.of(0xffffffff), 3, short)
    t.same(short, size === 10 ? [] : [33, 36, 39], 'a mask shorter than the set hides only its own slots')
  }
})

t.test(
  'sets sharing a SlotPool keep their own slots, in order, through moves, compaction and wide slots',
  async (t) => {
    const pool = new SlotPool()
    let seed = 7
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return (seed >>> 8) % n
    }
    // The model: a list with the same order rules (append; a deleted slot's place goes to the
    // last one), and whether the set has turned into a bitset (past 64 slots, until cleared),
    // which lists its slots in ascending order.
    const sets: NodeSet[] = []
    const models: Array<{ list: number[]; dense: boolean }> = []
    for (let i = 0; i < 300; i++) {
      sets.push(new NodeSet(pool))
      models.push({ list: [], dense: false })
    }
    let checked = 0
    const wrong: string[] = []
    for (let step = 0; step < 60_000; step++) {
      const i = random(sets.length)
      const set = sets[i]!
      const model = models[i]!
      // Slots past 65,535 only late, so the pool turns from 16 to 32 bits with lists in it.
      const slot = step > 45_000 && random(10) === 0 ? 70_000 + random(1000) : random(model.list.length > 40 ? 80 : 400)
      if (random(3) === 0) {
        set.delete(slot)
        const at = model.list.indexOf(slot)
        if (at >= 0) {
          model.list[at] = model.list[model.list.length - 1]!
          model.list.pop()
        }
      } else {
        set.add(slot)
        if (!model.list.includes(slot)) model.list.push(slot)
        if (model.list.length > 64) model.dense = true
      }
      if (random(50) === 0) {
        set.clear()
        model.list.length = 0
        model.dense = false
      }
      if (step % 1000 === 999) {
        for (let k = 0; k < sets.length; k++) {
          const seen: number[] = []
          sets[k]!.forEach((s) => void seen.push(s))
          const m = models[k]!
          const want = m.dense ? [...m.list].sort((a, b) => a - b) : m.list
          if (seen.join() !== want.join() || sets[k]!.size !== m.list.length) wrong.push(`set ${k} at step ${step}`)
          if (m.list.length > 0 && !sets[k]!.has(m.list[0]!)) wrong.push(`set ${k} lacks ${m.list[0]}`)
          checked++
        }
      }
    }
    t.same(wrong, [], 'every set lists what its model lists, in the same order')
    t.equal(checked, 60 * 300)
  },
)

t.test('bitsFirst names the first slots of a set less two others, ascending, and stops when out is full', async (t) => {
  const bits = new Uint32Array(wordsFor(200))
  for (const s of [1, 5, 40, 63, 64, 100, 199]) bitsSet(bits, s)
  const without = Uint32Array.of(0b10) // slot 1; words past it count as empty
  const without2 = new Uint32Array(wordsFor(200))
  bitsSet(without2, 40)
  const three = new Uint32Array(3)
  t.equal(bitsFirst(bits, without, without2, three), 3)
  t.same([...three], [5, 63, 64])
  const all = new Uint32Array(10)
  t.equal(bitsFirst(bits, undefined, undefined, all), 7, 'fewer than out holds: how many')
  t.same([...all.subarray(0, 7)], [1, 5, 40, 63, 64, 100, 199])
  t.equal(bitsFirst(bits, bits, undefined, three), 0)
  t.equal(bitsCountAnd(bits, without2), 1)
  t.equal(bitsCountAnd(bits, without), 1, 'words past the shorter count as empty')
})

t.test('bitsAndNotCount writes a less b and counts it; words past b are kept whole', async (t) => {
  const a = Uint32Array.of(0b1111, 0xffffffff, 0b101)
  const b = Uint32Array.of(0b0101, 0x0000ffff) // shorter than a
  const out = new Uint32Array(3).fill(7)
  t.equal(bitsAndNotCount(a, b, out), 2 + 16 + 2)
  t.same([...out], [0b1010, 0xffff0000, 0b101])
  t.equal(bitsAndNotCount(a, a, out), 0)
  t.same([...out], [0, 0, 0])
})

t.test('bitsCountAnd and NodeSet.countIn count a ∩ b exactly at every length, dense words and sparse', async (t) => {
  // The four-words-at-a-time count must agree with one popcount per word at every length
  // (its tail, its carries) and at every density, up to all ones.
  let seed = 7
  const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0)
  const word = (density: number): number => {
    let w = 0
    for (let b = 0; b < 32; b++) if (next() / 2 ** 32 < density) w |= 1 << b
    return w >>> 0
  }
  let mismatches = 0
  for (let n = 0; n <= 41; n++) {
    for (const density of [0, 0.05, 0.5, 0.95, 1]) {
      const a = Uint32Array.from({ length: n }, () => word(density))
      const b = Uint32Array.from({ length: n + (n % 3) }, () => word(density))
      let expected = 0
      for (let i = 0; i < n; i++) for (let v = a[i]! & b[i]!; v !== 0; v &= v - 1) expected++
      if (bitsCountAnd(a, b) !== expected || bitsCountAnd(b, a) !== expected) mismatches++
      const set = NodeSet.fromBits(b)
      let inMask = 0
      set.forEach((slot) => void (bitsHas(a, slot) && inMask++))
      if (set.countIn(a) !== inMask) mismatches++
    }
  }
  t.equal(mismatches, 0)
  const full = new Uint32Array(157).fill(0xffffffff)
  t.equal(bitsCountAnd(full, full), 157 * 32, 'all ones: no carry lost')
})

t.test(
  'bitsFirstIn names the first slots of a ∩ mask, ascending; NodeSet.bits is the bitset of a dense set only',
  async (t) => {
    const bits = new Uint32Array(wordsFor(200))
    for (const s of [1, 5, 40, 63, 64, 100, 199]) bitsSet(bits, s)
    const mask = new Uint32Array(wordsFor(101)) // shorter: words past it count as empty
    for (const s of [5, 63, 64, 100]) bitsSet(mask, s)
    const three = new Uint32Array(3)
    t.equal(bitsFirstIn(bits, mask, three), 3)
    t.same([...three], [5, 63, 64])
    const all = new Uint32Array(10)
    t.equal(bitsFirstIn(bits, mask, all), 4, 'fewer than out holds: how many')
    t.same([...all.subarray(0, 4)], [5, 63, 64, 100])
    t.equal(bitsFirstIn(bits, new Uint32Array(0), three), 0)
    const small = new NodeSet()
    small.add(3)
    t.equal(small.bits, null, 'a list has no bitset')
    const big = NodeSet.fromBits(new Uint32Array(8).fill(0xffffffff))
    t.ok(big.bits !== null && bitsCount(big.bits) === 256, 'a dense set reads as its bitset')
  },
)
