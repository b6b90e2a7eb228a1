import fc from 'fast-check'
import t from 'tap'
import { lookupKey } from '../../src/image/reference.js'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'
import { bitsCount, bitsHas } from '../../src/util/node-set.js'
import { buildIndex, NOW, nodeFacts, runtimeImage, STALE_MS } from '../helpers/inventory.js'

const nginx = 'docker.io/library/nginx:1.27'
const app = 'docker.io/library/myapp:dev'

t.test('an image is found under its tag, its digest and its id', async (t) => {
  const index = buildIndex([{ name: 'a', images: [nginx] }])
  const image = runtimeImage(nginx)
  for (const key of [nginx, image.repoDigests[0]!, image.id]) {
    t.equal(index.nodesWithImage(key)?.size, 1, key)
  }
  t.equal(index.nodesWithImage('docker.io/library/nginx:1.26'), undefined)
})

t.test('updates are incremental: replacing one node image list moves only its keys', async (t) => {
  const index = buildIndex([
    { name: 'a', images: [nginx, app] },
    { name: 'b', images: [nginx] },
  ])
  t.equal(index.nodesWithImage(nginx)?.size, 2)
  index.upsertImages({ nodeName: 'a', images: [runtimeImage(app)], observedAt: NOW })
  t.equal(index.nodesWithImage(nginx)?.size, 1, 'nginx left node a')
  t.equal(index.nodesWithImage(app)?.size, 1)
  index.removeImages('b')
  t.equal(index.nodesWithImage(nginx), undefined, 'a key with no node is dropped')
  t.equal(index.repositoryKeys('docker.io/library/nginx'), undefined, 'and so is its repository')
  t.same(
    [...(index.repositoryKeys('docker.io/library/myapp') ?? [])].filter((k) => !k.includes('@')),
    [app],
  )
  t.equal(index.imageSetCount, 1)
  t.equal(index.nodeCount, 2, 'removing an image list keeps the node')
})

t.test('Node.status.images proves presence and survives a NodeImageSet that lacks the image', async (t) => {
  const index = buildIndex([
    { name: 'a', images: [nginx], statusImages: [app, 'docker.io/library/nginx@sha256:' + 'a'.repeat(64)] },
  ])
  t.equal(index.nodesWithImage(app)?.size, 1, 'from status')
  index.upsertImages({ nodeName: 'a', images: [], observedAt: NOW })
  t.equal(index.nodesWithImage(app)?.size, 1, 'still proven by the node status')
  t.equal(index.nodesWithImage(nginx), undefined, 'nginx was only in the image list')
  index.upsertNode(nodeFacts({ name: 'a' }))
  t.equal(index.nodesWithImage(app), undefined, 'gone once neither source has it')
})

t.test('labels, taints and cordons are indexed and un-indexed per node', async (t) => {
  const index = buildIndex([
    { name: 'a', labels: { zone: 'x' }, taints: [{ key: 'k', value: 'v', effect: 'NoSchedule' }] },
    { name: 'b', labels: { zone: 'y' }, unschedulable: true, taints: [{ key: 'p', effect: 'PreferNoSchedule' }] },
  ])
  t.equal(bitsCount(index.labelValue('zone', 'x')!), 1)
  t.equal(bitsCount(index.labelKey('zone')!), 2)
  t.equal([...index.taintGroups()].length, 1, 'PreferNoSchedule never filters, so it is not indexed')
  t.equal(bitsCount(index.cordoned()), 1)
  index.upsertNode(nodeFacts({ name: 'a', labels: { zone: 'y' } }))
  t.equal(index.labelValue('zone', 'x'), undefined, 'a label value no node has any more is dropped')
  t.equal(bitsCount(index.labelValue('zone', 'y')!), 2)
  t.equal([...index.taintGroups()].length, 0, 'taint group dropped with its last node')
  index.upsertNode(nodeFacts({ name: 'b' }))
  t.equal(bitsCount(index.cordoned()), 0, 'uncordoned')
  index.removeNode('a')
  t.equal(bitsCount(index.nodes()), 1)
  t.equal(index.slotOf('a'), undefined)
})

t.test('freshness follows status.observedTime and the staleness window', async (t) => {
  const index = buildIndex([
    { name: 'fresh', images: [], age: 1000 },
    { name: 'stale', images: [], age: STALE_MS + 1 },
    { name: 'none' },
  ])
  const fresh = index.freshNodes(NOW)
  t.ok(bitsHas(fresh, index.slotOf('fresh')!))
  t.notOk(bitsHas(fresh, index.slotOf('stale')!))
  t.notOk(bitsHas(fresh, index.slotOf('none')!))
  index.upsertImages({ nodeName: 'stale', images: [], observedAt: NOW })
  t.ok(bitsHas(index.freshNodes(NOW), index.slotOf('stale')!), 'a new observation is seen at once')
  t.notOk(bitsHas(index.freshNodes(NOW + STALE_MS), index.slotOf('fresh')!), 'and ages out')
})

t.test('the index grows past its first capacity and frees slots for reuse', async (t) => {
  const specs = Array.from({ length: 300 }, (_, i) => ({
    name: `n${i}`,
    labels: { rack: String(i % 7) },
    images: [nginx],
  }))
  const index = buildIndex(specs)
  t.equal(index.nodeCount, 300)
  t.equal(index.nodesWithImage(nginx)?.size, 300)
  t.equal(bitsCount(index.labelValue('rack', '3')!), 43)
  t.equal(bitsCount(index.freshNodes(NOW)), 300)
  for (let i = 0; i < 100; i++) {
    index.removeNode(`n${i}`)
    index.removeImages(`n${i}`)
  }
  t.equal(index.nodeCount, 200)
  t.equal(index.nodesWithImage(nginx)?.size, 200)
  index.upsertNode(nodeFacts({ name: 'new' }))
  t.ok(index.slotOf('new')! < 100, 'a freed slot is reused')
})

t.test('namespace modes', async (t) => {
  const index = buildIndex([])
  index.setNamespaceMode('dev', 'warn')
  t.equal(index.namespaceMode('dev'), 'warn')
  index.setNamespaceMode('dev', undefined)
  t.equal(index.namespaceMode('dev'), undefined)
  index.setNamespaceSteer('dev', true)
  index.setNamespaceSteer('prod', false)
  t.equal(index.namespaceSteer('dev'), true)
  t.equal(index.namespaceSteer('prod'), false)
  index.setNamespaceSteer('dev', undefined)
  t.equal(index.namespaceSteer('dev'), undefined)
})

t.test(
  'precedence kept incrementally: any sequence of Node and NodeImageSet updates answers like a rebuild',
  async (t) => {
    const NODES = ['n0', 'n1', 'n2']
    const IMAGES = ['docker.io/library/img0:1', 'docker.io/library/img1:1', 'docker.io/library/img2:1']
    type Op =
      | { op: 'node'; node: number; status: boolean[] }
      | { op: 'set'; node: number; images: boolean[]; stale: boolean }
      | { op: 'removeNode'; node: number }
      | { op: 'removeSet'; node: number }
    const pick = (mask: boolean[]) => IMAGES.filter((_, i) => mask[i])
    const mask = fc.array(fc.boolean(), { minLength: IMAGES.length, maxLength: IMAGES.length })
    const node = fc.integer({ min: 0, max: NODES.length - 1 })
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('node' as const), node, status: mask }),
      fc.record({ op: fc.constant('set' as const), node, images: mask, stale: fc.boolean() }),
      fc.record({ op: fc.constant('removeNode' as const), node }),
      fc.record({ op: fc.constant('removeSet' as const), node }),
    )
    fc.assert(
      fc.property(fc.array(op, { maxLength: 25 }), (ops) => {
        const index = new InventoryIndex({ staleAfterMs: STALE_MS })
        const status = new Map<string, string[]>()
        const sets = new Map<string, { images: string[]; fresh: boolean }>()
        for (const o of ops) {
          const name = NODES[o.node]!
          if (o.op === 'node') {
            index.upsertNode(nodeFacts({ name, statusImages: pick(o.status) }))
            status.set(name, pick(o.status))
          } else if (o.op === 'set') {
            index.upsertImages({
              nodeName: name,
              images: pick(o.images).map(runtimeImage),
              observedAt: o.stale ? NOW - STALE_MS * 2 : NOW - 1000,
            })
            sets.set(name, { images: pick(o.images), fresh: !o.stale })
          } else if (o.op === 'removeNode') {
            index.removeNode(name)
            status.delete(name)
          } else {
            index.removeImages(name)
            sets.delete(name)
          }
          const fresh = index.freshNodes(NOW)
          for (const image of IMAGES) {
            const lookup = lookupKey(image)
            if (!lookup.ok) throw new Error(lookup.error)
            const got: string[] = []
            index.nodesResolving(lookup, fresh)?.forEach((slot) => got.push(index.nameOf(slot)))
            const union: string[] = []
            index.nodesResolving(lookup)?.forEach((slot) => union.push(index.nameOf(slot)))
            const want = NODES.filter((n) => {
              const set = sets.get(n)
              if (set?.fresh === true) return set.images.includes(image)
              return set?.images.includes(image) === true || status.get(n)?.includes(image) === true
            })
            const wantUnion = NODES.filter(
              (n) => sets.get(n)?.images.includes(image) === true || status.get(n)?.includes(image) === true,
            )
            if (got.sort().join() !== want.join() || union.sort().join() !== wantUnion.join()) {
              throw new Error(
                `${image} after ${JSON.stringify(ops)}: precedence ${got.join()} (want ${want.join()}), union ${union.join()} (want ${wantUnion.join()})`,
              )
            }
          }
        }
      }),
      { numRuns: 300 },
    )
    t.pass('300 random sequences agree with the rule')
  },
)
