import t from 'tap'
import { bitsCount, bitsForEach, bitsHas, bitsSet, NodeSet, wordsFor } from '../../src/util/node-set.js'

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
