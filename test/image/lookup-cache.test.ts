import t from 'tap'
import { LookupCache, lookupKey } from '../../src/image/reference.js'
import { DistanceRows, editDistance, nearest } from '../../src/image/similar.js'
import { buildIndex } from '../helpers/inventory.js'

// State that used to live in modules now belongs to an owner: each index its lookup cache,
// each search its edit-distance rows.

t.test('LookupCache remembers lookupKey per image, bounded', (t) => {
  const cache = new LookupCache()
  const first = cache.key('nginx:1.27')
  t.same(first, lookupKey('nginx:1.27'))
  t.equal(cache.key('nginx:1.27'), first, 'the same frozen object the second time')
  t.ok(Object.isFrozen(first))
  for (let i = 0; i < 5000; i++) cache.key(`img-${i}:1`)
  t.not(cache.key('nginx:1.27'), first, 'cleared once full, then computed afresh')
  t.same(cache.key('nginx:1.27'), first)
  t.not(buildIndex([]).lookups, buildIndex([]).lookups, 'one cache per index')
  t.end()
})

t.test("edit-distance rows are the caller's, and results do not depend on who reuses them", (t) => {
  const rows = new DistanceRows()
  t.equal(editDistance('kitten', 'sitting', 5, 0, rows), 3)
  // Different first and last characters: nothing shared is left out, all 600 are compared.
  t.equal(editDistance('a'.repeat(600), 'b' + 'a'.repeat(598) + 'b', 3, 0, rows), 2, 'grows for long strings')
  t.ok(rows.buffer.length >= 2 * 600)
  t.equal(editDistance('kitten', 'sitting', 5, 0, rows), 3, 'a grown buffer still gives the same answer')
  t.strictSame(nearest('nginx', ['ngnix', 'nginx', 'redis'], 2, 3), ['ngnix'])
  t.end()
})
