import t from 'tap'
import { ResourceVersionStore } from '../../src/inventory/rv-store.js'

// The reflector's only memory of a collection: name -> resourceVersion, and the Replace step
// that, after a complete list, names what is gone.

t.test('update says whether there is anything to hand on', (t) => {
  const store = new ResourceVersionStore()
  t.equal(store.update('a', '1'), true, 'new')
  t.equal(store.update('a', '1'), false, 'same resourceVersion again (a relist): nothing changed')
  t.equal(store.update('a', '2'), true, 'a newer one')
  t.equal(store.update('b', ''), true, 'an object without resourceVersion')
  t.equal(store.update('b', ''), true, 'is never taken as unchanged')
  t.equal(store.size, 2)
  t.end()
})

t.test('replace forgets and returns exactly the names the complete list no longer has', (t) => {
  const store = new ResourceVersionStore()
  for (const name of ['a', 'b', 'c']) store.update(name, '1')
  t.same(store.replace(new Set(['a', 'c', 'new'])), ['b'])
  t.equal(store.size, 2, 'names listed but not updated are not added by replace')
  t.same(store.replace(new Set(['a', 'c'])), [], 'nothing gone: nothing removed')
  t.equal(store.delete('a'), true)
  t.equal(store.delete('a'), false, 'deleting twice')
  t.same(store.replace(new Set()), ['c'], 'an empty list removes everything still known')
  t.end()
})
