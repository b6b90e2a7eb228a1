import t from 'tap'
import { editDistance, nearest } from '../../src/image/similar.js'

function levenshtein(a: string, b: string): number {
  const d: number[][] = []
  for (let i = 0; i <= a.length; i++) {
    d.push([i])
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] =
        i === 0
          ? j
          : Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
  }
  return d[a.length]![b.length]!
}

t.test('editDistance: known values', async (t) => {
  const cases: Array<[string, string, number]> = [
    ['', '', 0],
    ['a', '', 1],
    ['', 'abc', 3],
    ['kitten', 'sitting', 3],
    ['flaw', 'lawn', 2],
    ['nginx', 'ngnix', 2],
    ['nginx:1.27', 'nginx:1.26', 1],
    ['docker.io/library/nginx:1.27', 'docker.io/library/nginx:1.27', 0],
    ['docker.io/library/nginx:1.27', 'docker.io/library/nginx:1.2', 1],
    ['abc', 'cba', 2],
    ['intention', 'execution', 5],
  ]
  for (const [a, b, d] of cases) {
    t.equal(editDistance(a, b, 10), d, `${a} / ${b}`)
    t.equal(editDistance(b, a, 10), d, `${b} / ${a}`)
  }
})

t.test('editDistance: the bound', async (t) => {
  t.equal(editDistance('kitten', 'sitting', 3), 3, 'exactly at the bound')
  t.equal(editDistance('kitten', 'sitting', 2), 3, 'over the bound gives max + 1')
  t.equal(editDistance('kitten', 'sitting', 0), 1)
  t.equal(editDistance('same', 'same', 0), 0)
  t.equal(editDistance('a', 'abcdefgh', 3), 4, 'length difference alone exceeds the bound')
  t.equal(editDistance('', 'abcd', 3), 4)
  t.equal(editDistance('abcd', '', 4), 4)
  t.equal(editDistance('abcdef', 'ghijkl', 2), 3, 'early exit when a whole row exceeds the bound')
  t.equal(editDistance('x', 'y', -5), 1, 'a negative bound behaves as 0')
  t.equal(editDistance('x', 'y', 1.7), 1, 'a fractional bound is floored')
})

t.test('editDistance agrees with the full table on random strings', async (t) => {
  let seed = 12345
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed % n
  }
  const alphabet = 'abc/:.-'
  const word = (): string => {
    let s = ''
    const len = rand(14)
    for (let i = 0; i < len; i++) s += alphabet[rand(alphabet.length)]
    return s
  }
  let bad = 0
  for (let n = 0; n < 5000; n++) {
    const a = word()
    const b = word()
    const max = rand(8)
    const full = levenshtein(a, b)
    const want = full > max ? max + 1 : full
    const got = editDistance(a, b, max)
    if (got !== want) {
      bad++
      if (bad < 5) t.fail(`${JSON.stringify(a)} ${JSON.stringify(b)} max=${max}: got ${got}, want ${want}`)
    }
  }
  t.equal(bad, 0, 'no disagreements in 5000 pairs')
})

t.test('editDistance: names sharing a prefix and a suffix agree with the full table', async (t) => {
  // The prefix and suffix both names share are left out of the rows: they overlap when one
  // name is the other with letters added (`aa` / `aaa`), and `skip` may end inside them.
  let seed = 777
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed % n
  }
  const alphabet = 'aab:.'
  const word = (max: number): string => {
    let s = ''
    const len = rand(max)
    for (let i = 0; i < len; i++) s += alphabet[rand(alphabet.length)]
    return s
  }
  let bad = 0
  for (let n = 0; n < 5000; n++) {
    const prefix = rand(2) === 0 ? 'registry.example.com/team/' : word(4)
    const suffix = rand(2) === 0 ? ':1.2.3' : word(4)
    const a = prefix + word(6) + suffix
    const b = prefix + word(6) + suffix
    const max = rand(8)
    const skip = rand(2) === 0 ? prefix.length : 0
    const full = levenshtein(a, b)
    const want = full > max ? max + 1 : full
    const got = editDistance(a, b, max, skip)
    if (got !== want) {
      bad++
      if (bad < 5) t.fail(`${JSON.stringify(a)} ${JSON.stringify(b)} max=${max} skip=${skip}: got ${got}, want ${want}`)
    }
  }
  t.equal(bad, 0, 'no disagreements in 5000 pairs')
  t.equal(editDistance('aa', 'aaa', 2), 1, 'one name inside the other')
  t.equal(editDistance('registry.example.com/search/apj', 'registry.example.com/search/api', 2), 1)
})

t.test('editDistance: long strings grow the shared buffer and stay correct', async (t) => {
  const a = 'registry.example.com/team/' + 'x'.repeat(2000) + ':v1'
  const b = 'registry.example.com/team/' + 'x'.repeat(1999) + 'y:v2'
  t.equal(editDistance(a, b, 3), 2)
  t.equal(editDistance(a, b, 1), 2)
  t.equal(editDistance('ab', 'ba', 2), 2, 'short again after long')
})

t.test('nearest', async (t) => {
  const names = [
    'docker.io/library/nginx:1.27',
    'docker.io/library/nginx:1.26',
    'docker.io/library/nginx:1.2',
    'docker.io/library/nginx:latest',
    'docker.io/library/redis:7',
    'docker.io/library/nginx:1.27',
    'registry.k8s.io/pause:3.9',
  ]
  t.same(
    nearest('docker.io/library/nginx:1.28', names, 2, 5),
    ['docker.io/library/nginx:1.2', 'docker.io/library/nginx:1.26', 'docker.io/library/nginx:1.27'],
    'all at distance 1: string order, each once',
  )
  t.same(
    nearest('docker.io/library/nginx:1.261', names, 2, 5),
    ['docker.io/library/nginx:1.26', 'docker.io/library/nginx:1.2', 'docker.io/library/nginx:1.27'],
    'closest first, then string order',
  )
  t.same(nearest('docker.io/library/nginx:1.28', names, 2, 1), ['docker.io/library/nginx:1.2'], 'limit')
  t.same(
    nearest('docker.io/library/nginx:1.27', names, 1, 5),
    ['docker.io/library/nginx:1.2', 'docker.io/library/nginx:1.26'],
    'the wanted name itself is skipped',
  )
  t.same(nearest('ghcr.io/o/a:1', names, 3, 5), [], 'nothing close')
  t.same(nearest('x', names, 3, 0), [], 'limit 0')
  t.same(
    nearest('docker.io/library/nginx:1.28', new Set(names), 2, 2),
    ['docker.io/library/nginx:1.2', 'docker.io/library/nginx:1.26'],
    'any iterable',
  )

  // Ties at the bound after the result is full still enter in string order.
  t.same(nearest('ab', ['zb', 'ay', 'ax', 'ac', 'aa'], 1, 2), ['aa', 'ac'])
  t.same(nearest('ab', ['zz', 'ab', 'abc', 'b'], 1, 5), ['abc', 'b'])
})
