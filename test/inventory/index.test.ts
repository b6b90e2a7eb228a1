import t from 'tap'
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
  t.same([...(index.repositoryKeys('docker.io/library/myapp') ?? [])].filter((k) => !k.includes('@')), [app])
  t.equal(index.imageSetCount, 1)
  t.equal(index.nodeCount, 2, 'removing an image list keeps the node')
})

t.test('Node.status.images proves presence and survives a NodeImageSet that lacks the image', async (t) => {
  const index = buildIndex([{ name: 'a', images: [nginx], statusImages: [app, 'docker.io/library/nginx@sha256:' + 'a'.repeat(64)] }])
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
  const specs = Array.from({ length: 300 }, (_, i) => ({ name: `n${i}`, labels: { rack: String(i % 7) }, images: [nginx] }))
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
