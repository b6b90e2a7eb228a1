import t from 'tap'
import { createAgent } from '../../src/agent/agent.js'
import { boundImagesElsewhere, connectContainerd, MAX_IMAGES_ELSEWHERE } from '../../src/agent/containerd.js'
import type { NodeImageSet } from '../../src/api/types.js'
import { decide } from '../../src/decision/decide.js'
import { denialMessage, warningsFor } from '../../src/decision/messages.js'
import { toNodeImages } from '../../src/inventory/convert.js'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'
import { renderWhere, whereIs } from '../../src/inspect/where.js'
import { containerdSkipReason } from '../helpers/containerd.js'
import { containerdWithCri } from '../helpers/containerd-cri.js'
import { nodeFacts } from '../helpers/inventory.js'
import { writeOciImage } from '../helpers/oci.js'

// Images in the wrong place: loaded into a containerd namespace the kubelet does not look
// in. The agent lists them over containerd's own API and publishes them apart; the webhook
// names the node, the place and the commands that fix it.

t.test('the published list is sorted, de-duplicated and bounded', (t) => {
  const many = Array.from({ length: MAX_IMAGES_ELSEWHERE + 5 }, (_, i) => ({
    name: `docker.io/x/app:${String(i).padStart(5, '0')}`,
    containerdNamespace: i % 2 === 0 ? 'default' : 'moby',
  }))
  const bounded = boundImagesElsewhere([...many, many[0]!].reverse())
  t.equal(bounded.images.length, MAX_IMAGES_ELSEWHERE)
  t.equal(bounded.omitted, 5, 'the duplicate is not counted')
  t.equal(bounded.images[0]?.containerdNamespace, 'default')
  t.equal(bounded.images[0]?.name, 'docker.io/x/app:00000')
  t.same(boundImagesElsewhere([]), { images: [], omitted: 0 })
  t.end()
})

const skip = await containerdSkipReason()

t.test('against a real containerd', { skip: skip ?? false }, async (t) => {
  const started = await containerdWithCri(t)
  if (started === undefined) return
  const { ctrd, cri } = started
  const containerd = connectContainerd(ctrd.endpoint)
  t.teardown(() => containerd.close())

  const visible = await writeOciImage(ctrd.dir, 'v.tar', {
    names: ['docker.io/neverpull/visible:1'],
    content: 'visible',
  })
  const hidden = await writeOciImage(ctrd.dir, 'h.tar', { names: ['docker.io/neverpull/hidden:1'], content: 'hidden' })
  await ctrd.importImage(visible.path)
  await ctrd.importImageInto('default', hidden.path)

  await t.test('containerd lists the image imported into default only, outside k8s.io', async (t) => {
    const listed = await containerd.listImagesElsewhere()
    t.same(listed.images, [
      { name: 'docker.io/neverpull/hidden:1', digest: hidden.manifestDigest, containerdNamespace: 'default' },
    ])
    t.equal(listed.omitted, 0)
    const kubelet = await cri.listImages()
    t.same(kubelet.map((i) => i.repoTags).flat(), ['docker.io/neverpull/visible:1'], 'the kubelet sees only k8s.io')
  })

  await t.test('one channel kept between listings, replaced after containerd restarted', async (t) => {
    await ctrd.restart()
    // The kept channel may see the restart as UNAVAILABLE once; the next listing connects anew.
    let listed: Awaited<ReturnType<typeof containerd.listImagesElsewhere>> | undefined
    for (let attempt = 0; attempt < 2 && listed === undefined; attempt++) {
      try {
        listed = await containerd.listImagesElsewhere()
      } catch (err) {
        t.match((err as Error).message, /UNAVAILABLE/, 'only a lost connection fails')
      }
    }
    t.same(
      listed?.images.map((i) => i.name),
      ['docker.io/neverpull/hidden:1'],
    )
  })

  const applied: NodeImageSet[] = []
  const agent = createAgent({
    nodeName: 'node-a',
    cri,
    containerd,
    publisher: {
      apply(set) {
        applied.push(set)
        return Promise.resolve()
      },
      applyStatus: () => Promise.resolve(),
    },
  })

  await t.test('the agent publishes it as its own list, never among the images', async (t) => {
    await agent.tick()
    const spec = applied.at(-1)?.spec
    t.same(spec?.images.map((i) => i.repoTags).flat(), ['docker.io/neverpull/visible:1'])
    t.same(spec?.imagesElsewhere, [
      { name: 'docker.io/neverpull/hidden:1', digest: hidden.manifestDigest, containerdNamespace: 'default' },
    ])
  })

  await t.test('the denial names the node, the place and the fix; where shows it', (t) => {
    const index = new InventoryIndex({ staleAfterMs: 15 * 60_000 })
    index.upsertNode(nodeFacts({ name: 'node-a' }))
    const converted = toNodeImages({ ...applied.at(-1), status: { observedTime: new Date().toISOString() } })
    t.ok(converted.ok, 'the published object reads back')
    if (!converted.ok) return t.end()
    index.upsertImages(converted.value)
    const subject = { kind: 'Pod', namespace: 'default', name: 'web', operation: 'CREATE' }
    const template = {
      kind: 'Pod',
      perNode: false,
      mirror: false,
      placement: { tolerations: [] },
      containers: [{ kind: 'container' as const, name: 'app', image: 'neverpull/hidden:1', pullPolicy: 'Never' }],
    }
    const d = decide(index, { subject, template, mode: 'enforce', now: Date.now() })
    t.equal(d.verdict, 'deny', 'not in k8s.io: the kubelet will not find it')
    const message = denialMessage(d, subject)
    t.match(
      message.split('\n')[0],
      'is not on the only eligible node (node-a); it is on node-a in containerd namespace "default", where the kubelet does not look (only k8s.io)',
    )
    t.match(
      message,
      'ctr -n default images export image.tar docker.io/neverpull/hidden:1 && ctr -n k8s.io images import image.tar',
    )
    t.match(
      message,
      'kind: kind load docker-image neverpull/hidden:1; minikube: minikube image load neverpull/hidden:1',
    )
    const warned = warningsFor({ ...d, mode: 'warn', verdict: 'warn' }, subject)
    for (const w of warned) t.ok([...w].length <= 256, 'warnings stay within 256 runes')
    t.ok(
      warned.some((w) => w.startsWith('Fix: on node-a, ctr -n default images export')),
      'the fix warning gives the commands',
    )
    const where = renderWhere(whereIs(index, 'neverpull/hidden:1', Date.now()), Date.now())
    t.match(where, /node-a\s+absent; in containerd namespace default/)
    t.match(where, /holds it only outside containerd namespace k8s\.io/)
    t.end()
  })

  await t.test('removal is seen within one interval: the next tick', async (t) => {
    await ctrd.removeImageFrom('default', 'docker.io/neverpull/hidden:1')
    const before = applied.length
    await agent.tick()
    t.equal(applied.length, before + 1, 'a changed list is a new apply')
    t.equal(applied.at(-1)?.spec.imagesElsewhere, undefined, 'nothing elsewhere any more')
  })

  await t.test('another namespace is listed too; a failing containerd API never stops the kubelet list', async (t) => {
    await ctrd.importImageInto('moby', hidden.path)
    await agent.tick()
    t.equal(applied.at(-1)?.spec.imagesElsewhere?.[0]?.containerdNamespace, 'moby')
    const failing = createAgent({
      nodeName: 'node-b',
      cri,
      containerd: {
        listImagesElsewhere: () => Promise.reject(new Error('unimplemented')),
      },
      publisher: {
        apply(set) {
          applied.push(set)
          return Promise.resolve()
        },
        applyStatus: () => Promise.resolve(),
      },
    })
    const r = await failing.tick()
    t.equal(r.runtimeOk, true)
    t.equal(applied.at(-1)?.spec.nodeName, 'node-b')
    t.equal(applied.at(-1)?.spec.imagesElsewhere, undefined)
  })
})
