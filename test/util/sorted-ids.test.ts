import t from 'tap'
import { hasId, packedHas, packIds, sortedIds, unpackIds } from '../../src/util/sorted-ids.js'

t.test('sortedIds sorts numerically and keeps each id once', async (t) => {
  t.same([...sortedIds([10, 2, 2, 100_000, 0, 10])], [0, 2, 10, 100_000])
  t.same([...sortedIds([])], [])
})

t.test('a packed list gives back its ids, whatever the gaps', async (t) => {
  const lists: number[][] = [
    [],
    [0],
    [127],
    [128],
    [0, 1, 2, 3],
    [5, 132, 133, 16_511, 16_512, 16_513],
    [1, 2_097_151, 2_097_152, 268_435_455, 268_435_456, 4_294_967_295],
  ]
  let seed = 3
  const random = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    return seed % n
  }
  for (let k = 0; k < 50; k++) {
    const ids: number[] = []
    for (let i = 0; i < random(700); i++) ids.push(random(k % 2 === 0 ? 70_000 : 400_000_000))
    lists.push([...sortedIds(ids)])
  }
  for (const ids of lists) {
    const sorted = Uint32Array.from(ids)
    const packed = packIds(sorted)
    t.same([...unpackIds(packed)], ids, `${ids.length} ids up to ${ids[ids.length - 1] ?? '-'}`)
    for (const probe of [...ids.slice(0, 20), 0, 1, 127, 128, 4_294_967_295, ...ids.slice(0, 20).map((i) => i + 1)]) {
      const want = ids.includes(probe)
      if (packedHas(packed, probe) !== want || hasId(sorted, probe) !== want) t.fail(`${probe} in [${ids.join()}]`)
    }
  }
  t.ok(packIds(Uint32Array.from([0, 1, 2, 3])).length === 4, 'gaps of 1 take a byte each')
  t.ok(packIds(Uint32Array.from([1_000_000])).length === 3, 'a gap below 2^21 takes three bytes')
})
