import t from 'tap'
import { InventoryFileError, loadInventoryText } from '../../src/inventory/file.js'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'
import { isRuntimeClass, toRuntimeClass } from '../../src/inventory/runtime-class.js'

// RuntimeClass node.k8s.io/v1 (and v1beta1, 1.19): handler and scheduling{nodeSelector,
// tolerations} at the top level (k8s.io/api node/v1 types.go, node/v1beta1 types.go).
const gvisor = (apiVersion = 'node.k8s.io/v1') => `apiVersion: ${apiVersion}
kind: RuntimeClass
metadata: {name: gvisor}
handler: runsc
scheduling:
  nodeSelector: {sandbox.gke.io/runtime: gvisor}
  tolerations:
  - {key: sandbox.gke.io/runtime, operator: Equal, value: gvisor, effect: NoSchedule}
`

t.test('RuntimeClass objects are read field by field', async (t) => {
  t.ok(isRuntimeClass({ apiVersion: 'node.k8s.io/v1', kind: 'RuntimeClass' }))
  t.ok(isRuntimeClass({ apiVersion: 'node.k8s.io/v1beta1', kind: 'RuntimeClass' }))
  t.notOk(
    isRuntimeClass({ apiVersion: 'node.k8s.io/v1alpha1', kind: 'RuntimeClass' }),
    'v1alpha1 kept scheduling under spec; never served with it',
  )
  t.same(
    toRuntimeClass({ apiVersion: 'node.k8s.io/v1', kind: 'RuntimeClass', metadata: { name: 'runc' }, handler: 'runc' }),
    { ok: true, value: { name: 'runc', handler: 'runc', tolerations: [] } },
  )
  const bad: Array<[unknown, RegExp]> = [
    [{ kind: 'RuntimeClass', metadata: {} }, /without metadata.name/],
    [{ metadata: { name: 'x' }, scheduling: [] }, /scheduling must be an object/],
    [{ metadata: { name: 'x' }, scheduling: { nodeSelector: { a: 1 } } }, /scheduling.nodeSelector.a must be a string/],
    [{ metadata: { name: 'x' }, scheduling: { tolerations: {} } }, /scheduling.tolerations must be a list/],
    [
      { metadata: { name: 'x' }, scheduling: { tolerations: [{ key: 5 }] } },
      /scheduling.tolerations\[0\].key must be a string/,
    ],
  ]
  for (const [obj, error] of bad) {
    const r = toRuntimeClass(obj)
    t.notOk(r.ok)
    if (!r.ok) t.match(r.error, error)
  }
})

t.test('--inventory-file: RuntimeClasses load; with any, the file is taken to hold them all', async (t) => {
  for (const version of ['node.k8s.io/v1', 'node.k8s.io/v1beta1']) {
    const index = new InventoryIndex({ staleAfterMs: 60_000 })
    const summary = loadInventoryText(gvisor(version), 'f.yaml', index, 0)
    t.equal(summary.runtimeClasses, 1, version)
    t.same(index.runtimeClass('gvisor'), {
      name: 'gvisor',
      handler: 'runsc',
      nodeSelector: { 'sandbox.gke.io/runtime': 'gvisor' },
      tolerations: [{ key: 'sandbox.gke.io/runtime', operator: 'Equal', value: 'gvisor', effect: 'NoSchedule' }],
    })
    t.equal(index.runtimeClassesComplete, true)
  }
  const none = new InventoryIndex({ staleAfterMs: 60_000 })
  loadInventoryText('apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n', 'f.yaml', none, 0)
  t.equal(none.runtimeClassesComplete, false, 'a snapshot without RuntimeClasses says nothing about them')
  const broken = new InventoryIndex({ staleAfterMs: 60_000 })
  let error: unknown
  try {
    loadInventoryText(
      gvisor() +
        '---\napiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: x}\nscheduling: {nodeSelector: []}\n',
      'f.yaml',
      broken,
      0,
    )
  } catch (err) {
    error = err
  }
  t.ok(error instanceof InventoryFileError, 'a malformed RuntimeClass is an error')
  t.match(
    (error as Error).message,
    /^f\.yaml: object 2: RuntimeClass x: scheduling.nodeSelector must be an object of strings$/,
  )
  t.equal(broken.runtimeClass('gvisor'), undefined, 'all or nothing')
})
