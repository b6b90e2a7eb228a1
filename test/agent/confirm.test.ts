import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { createAgent, type Clock } from '../../src/agent/agent.js'
import { createNameConfirmer } from '../../src/agent/confirm.js'
import { CriError } from '../../src/agent/cri.js'
import type { NodeImageSetStatus, Publisher } from '../../src/agent/publish.js'
import type { NodeImageSet, RuntimeImage } from '../../src/api/types.js'
import { lookupKey } from '../../src/image/reference.js'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'
import { containerdSkipReason, NAMESPACE } from '../helpers/containerd.js'
import { containerdWithCri } from '../helpers/containerd-cri.js'
import { writeOciImage } from '../helpers/oci.js'

// Issue 10 item 8: publish only the names the runtime resolves. containerd lists a name stored
// raw (`ctr images tag SRC rawname:tag`) normalised, but ImageStatus - the kubelet's question
// (pkg/kubelet/images image_manager.go EnsureImageExists -> GetImageRef) - finds nothing under it:
// containerd's LocalResolve (internal/cri/server/images/service.go; pkg/cri/server/helpers.go
// localResolve in 1.6) looks up ParseDockerRef(name) among the names as stored. containerd#8848.

const id = (c: string) => 'sha256:' + c.repeat(64)
const img = (c: string, tags: string[], digests: string[] = []): RuntimeImage => ({
  id: id(c),
  repoTags: tags,
  repoDigests: digests,
  size: 1,
  pinned: false,
})

function fakeStatus(images: () => RuntimeImage[], unresolvable: Set<string>) {
  const asked: string[] = []
  const status = async (name: string): Promise<RuntimeImage | undefined> => {
    asked.push(name)
    if (unresolvable.has(name)) return undefined
    return images().find((i) => i.repoTags.includes(name) || i.repoDigests.includes(name))
  }
  return { asked, status }
}

t.test('the confirmer: asks once per new name, keeps only what resolves', async (t) => {
  let listing = [
    img('a', ['docker.io/library/a:1', 'docker.io/library/rawname:tag'], ['docker.io/library/a@' + id('d')]),
    img('b', ['docker.io/library/b:1']),
  ]
  const f = fakeStatus(() => listing, new Set(['docker.io/library/rawname:tag']))
  const c = createNameConfirmer(f.status, { budget: 10, recheckMs: 60_000 })
  const r1 = await c.confirm(listing, 0)
  t.equal(r1.calls, 4)
  t.equal(r1.pending, 0)
  t.same(r1.images[0]?.repoTags, ['docker.io/library/a:1'], 'the raw name is left out')
  t.same(r1.images[0]?.repoDigests, ['docker.io/library/a@' + id('d')])
  t.same(r1.unresolved, ['docker.io/library/rawname:tag'])
  t.equal(r1.images[0]?.id, id('a'), 'the image stays: its ID always resolves')

  const r2 = await c.confirm(listing, 1_000)
  t.equal(r2.calls, 0, 'an unchanged listing costs no call')
  t.same(r2.images, r1.images)

  // A name that moves to another image is a new pair: asked again.
  listing = [img('a', ['docker.io/library/a:1', 'docker.io/library/rawname:tag']), img('c', ['docker.io/library/b:1'])]
  const r3 = await c.confirm(listing, 2_000)
  t.equal(r3.calls, 1)
  t.same(f.asked.slice(-1), ['docker.io/library/b:1'])
  t.same(r3.images[1]?.repoTags, ['docker.io/library/b:1'])

  // Unresolved names are asked again after recheckMs, then resolve once fixed.
  const r4 = await c.confirm(listing, 61_000)
  t.same(f.asked.slice(-1), ['docker.io/library/rawname:tag'], 're-checked after recheckMs')
  t.equal(r4.calls, 1)
  const r5 = await c.confirm(listing, 62_000)
  t.equal(r5.calls, 0, 'then not again within recheckMs')
})

t.test('the confirmer: keeps only the pairs listed, asks a pair listed twice once', async (t) => {
  const both = img('a', ['docker.io/library/a:1', 'docker.io/library/a:2'])
  const f = fakeStatus(() => [both], new Set())
  const c = createNameConfirmer(f.status, { budget: 10, recheckMs: 60_000 })
  const r1 = await c.confirm([both, { ...both }], 0)
  t.equal(r1.calls, 2, 'an image listed twice: each name asked once')
  t.same(
    r1.images.map((i) => i.repoTags),
    [both.repoTags, both.repoTags],
  )
  const r2 = await c.confirm([both], 1_000)
  t.equal(r2.calls, 0)
  t.equal(r2.images[0], both, 'an image whose names are all confirmed is handed back as listed')
  // A name gone from the listing is forgotten: listed again, it is asked again.
  const one = img('a', ['docker.io/library/a:1'])
  const r3 = await c.confirm([one], 2_000)
  t.equal(r3.calls, 0)
  t.same(r3.images[0]?.repoTags, ['docker.io/library/a:1'])
  const r4 = await c.confirm([both], 3_000)
  t.equal(r4.calls, 1)
  t.same(f.asked.slice(-1), ['docker.io/library/a:2'])
  t.same(r4.images[0]?.repoTags, both.repoTags)
  // A runtime failing mid-way keeps what it answered before the failure (4 names a batch).
  const six = img(
    'b',
    [1, 2, 3, 4, 5, 6].map((n) => `docker.io/library/b:${n}`),
  )
  let fail = true
  const flaky = createNameConfirmer(async (name) => {
    if (fail && name.endsWith(':6')) throw new CriError('CRI ImageStatus failed: UNAVAILABLE', 'unix:///x', 14)
    return six
  })
  await t.rejects(flaky.confirm([six], 0), /UNAVAILABLE/)
  fail = false
  const r5 = await flaky.confirm([six], 1)
  t.equal(r5.calls, 2, 'only the batch that failed is asked again')
  t.same(r5.images[0]?.repoTags, six.repoTags)
})

t.test('the confirmer: a name resolving to another image is not this image’s name', async (t) => {
  // Two images listed under one name (one stored raw, one normalised): the runtime resolves it to one.
  const listing = [img('a', ['docker.io/library/x:1']), img('b', ['docker.io/library/x:1'])]
  const c = createNameConfirmer(async () => listing[1], {})
  const r = await c.confirm(listing, 0)
  t.same(
    r.images.map((i) => i.repoTags),
    [[], ['docker.io/library/x:1']],
  )
})

t.test('the confirmer: a budget per interval, new names before re-checks', async (t) => {
  const listing = Array.from({ length: 10 }, (_, i) => img(i.toString(16), [`docker.io/library/i${i}:1`]))
  const f = fakeStatus(() => listing, new Set(['docker.io/library/i0:1']))
  const c = createNameConfirmer(f.status, { budget: 4, recheckMs: 1_000 })
  const sizes: Array<[number, number]> = []
  for (let now = 0; now < 3; now++) {
    const r = await c.confirm(listing, now)
    sizes.push([r.calls, r.pending])
  }
  t.same(
    sizes,
    [
      [4, 6],
      [4, 2],
      [2, 0],
    ],
    'never more than the budget; pending until every name was asked',
  )
  // i0 is due for a re-check, and a new image arrives: the new one goes first.
  const more = [...listing, ...Array.from({ length: 4 }, (_, i) => img('e' + i, [`docker.io/library/new${i}:1`]))]
  const r = await c.confirm(more, 5_000)
  t.equal(r.calls, 4)
  t.notOk(f.asked.slice(-4).includes('docker.io/library/i0:1'), 'the re-check waits')
  t.equal(r.pending, 0)
})

t.test('the confirmer: runtime errors', async (t) => {
  const listing = [img('a', ['docker.io/library/a:1'])]
  const down = createNameConfirmer(async () => {
    throw new CriError('CRI ImageStatus failed: UNAVAILABLE', 'unix:///x', 14)
  })
  await t.rejects(down.confirm(listing, 0), /UNAVAILABLE/, 'a runtime that is down fails the tick')
  const refusing = createNameConfirmer(async () => {
    throw new CriError('CRI ImageStatus failed: UNKNOWN: ambiguous', 'unix:///x', 2)
  })
  t.same(
    (await refusing.confirm(listing, 0)).unresolved,
    ['docker.io/library/a:1'],
    'an error answer: the kubelet would fail too',
  )
  const old = createNameConfirmer(async () => {
    throw new CriError('CRI ImageStatus failed: UNIMPLEMENTED', 'unix:///x', 12)
  })
  const r = await old.confirm(listing, 0)
  t.equal(r.enabled, false)
  t.same(r.images, listing, 'no ImageStatus: the listing as it is')
})

const clock: Clock = { now: () => 1_000_000, sleep: async () => {} }

class Recorder implements Publisher {
  applied: NodeImageSet[] = []
  statuses: NodeImageSetStatus[] = []
  async apply(set: NodeImageSet) {
    this.applied.push(structuredClone(set))
  }
  async applyStatus(_: string, status: NodeImageSetStatus) {
    this.statuses.push(structuredClone(status))
  }
}

t.test('the agent publishes confirmed names only, and waits for a full confirmation', async (t) => {
  const listing = [
    img('a', ['docker.io/library/a:1', 'docker.io/library/rawname:tag']),
    img('b', ['docker.io/library/b:1']),
    img('c', ['docker.io/library/c:1']),
  ]
  const f = fakeStatus(() => listing, new Set(['docker.io/library/rawname:tag']))
  const publisher = new Recorder()
  const agent = createAgent({
    nodeName: 'n',
    cri: {
      listImages: async () => structuredClone(listing),
      imageStatus: f.status,
      version: async () => ({
        name: 'containerd',
        version: '1.7',
        endpoint: 'unix:///x',
      }),
    },
    publisher,
    clock,
    confirmBudget: 3,
  })
  const first = await agent.tick()
  t.equal(
    first.specPublished,
    false,
    'one name not yet asked: nothing published rather than a list that says it is absent',
  )
  const waiting = publisher.statuses.at(-1)?.conditions?.find((c) => c.type === 'RuntimeReachable')
  t.equal(waiting?.reason, 'ConfirmingNames')
  t.match(waiting?.message, /1 left/)
  const second = await agent.tick()
  t.equal(second.specPublished, true)
  const spec = publisher.applied.at(-1)!.spec
  t.same(
    spec.images.flatMap((i) => i.repoTags),
    ['docker.io/library/a:1', 'docker.io/library/b:1', 'docker.io/library/c:1'],
  )
  t.match(
    publisher.statuses.at(-1)?.conditions?.find((c) => c.type === 'RuntimeReachable')?.message,
    /1 listed name the runtime does not resolve left out \(docker\.io\/library\/rawname:tag\)/,
  )
  const calls = f.asked.length
  await agent.tick()
  t.equal(f.asked.length, calls, 'steady state: no ImageStatus calls')
})

const run = promisify(execFile)
const skip = await containerdSkipReason()

t.test(
  'against a real containerd: a raw name is listed, not resolved, not published',
  { skip: skip ?? false },
  async (t) => {
    const started = await containerdWithCri(t)
    if (started === undefined) return
    const { ctrd, cri } = started
    const a = await writeOciImage(ctrd.dir, 'a.tar', {
      names: ['docker.io/neverpull/app:1.0'],
      content: 'raw names',
    })
    await ctrd.importImage(a.path)
    // As in containerd#8848: ctr stores the target name exactly as typed.
    await run('ctr', [
      '-a',
      ctrd.socket,
      '-n',
      NAMESPACE,
      'images',
      'tag',
      'docker.io/neverpull/app:1.0',
      'rawname:tag',
    ])
    // And a name typed in full, which is stored as the CRI looks it up.
    await run('ctr', [
      '-a',
      ctrd.socket,
      '-n',
      NAMESPACE,
      'images',
      'tag',
      'docker.io/neverpull/app:1.0',
      'docker.io/library/fullname:tag',
    ])
    t.ok((await ctrd.listRefs()).includes('rawname:tag'), 'stored raw')

    const listed = await cri.listImages()
    const tags = listed.flatMap((i) => i.repoTags).sort()
    t.ok(tags.includes('docker.io/library/rawname:tag'), `the CRI lists it normalised: ${tags.join(', ')}`)
    t.equal(
      await cri.imageStatus('docker.io/library/rawname:tag'),
      undefined,
      'ImageStatus on the listed name: nothing',
    )
    t.equal(await cri.imageStatus('rawname:tag'), undefined, 'nor on what the kubelet sends for image: rawname:tag')
    t.equal((await cri.imageStatus('fullname:tag'))?.id, a.configDigest, 'the normalised name resolves')

    const publisher = new Recorder()
    const agent = createAgent({ nodeName: 'n1', cri, publisher, clock })
    t.equal((await agent.tick()).specPublished, true)
    const spec = publisher.applied.at(-1)!.spec
    const published = spec.images.flatMap((i) => i.repoTags).sort()
    t.same(
      published,
      ['docker.io/library/fullname:tag', 'docker.io/neverpull/app:1.0'],
      'the raw name is not published',
    )

    // And so the webhook's verdict is the runtime's, for every name the runtime lists.
    const index = new InventoryIndex({ staleAfterMs: 60_000 })
    index.upsertImages({
      nodeName: 'n1',
      images: spec.images.map((i) => ({
        id: i.id,
        repoTags: i.repoTags ?? [],
        repoDigests: i.repoDigests ?? [],
        size: 0,
        pinned: false,
      })),
      observedAt: Date.now(),
    })
    for (const image of ['rawname:tag', 'fullname:tag', 'neverpull/app:1.0', 'docker.io/library/rawname:tag']) {
      const runtime = (await cri.imageStatus(image)) !== undefined
      const k = lookupKey(image)
      const ours = k.ok && index.nodesResolving(k)?.has(index.slotOf('n1')!) === true
      t.equal(ours, runtime, `${image}: containerd ${runtime ? 'resolves' : 'does not resolve'} it, and we agree`)
    }
  },
)
