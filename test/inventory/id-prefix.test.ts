import t from 'tap'
import { decide, distinctIds } from '../../src/decision/decide.js'
import { idPrefixOf, lookupKey } from '../../src/image/reference.js'
import type { RuntimeImage } from '../../src/api/types.js'
import { buildIndex, NOW } from '../helpers/inventory.js'

// containerd's truncated-ID fallback (issue 10 item 3). Upstream: containerd
// internal/cri/server/images/service.go LocalResolve (pkg/cri/server/helpers.go localResolve in
// 1.6/1.7) -> internal/cri/store/image/image.go store.get -> go-digest v1.0.0
// digestset.Set.Lookup. The real containerd agrees: test/agent/containerd-lookup.test.ts.

const hex = (c: string, rest = '0'): string => (c + rest.repeat(64)).slice(0, 64)
const A = 'sha256:' + hex('4d1f0e2c7a9b', '1')
const B = 'sha256:' + hex('4d1f99', '2')
const C = 'sha256:' + hex('77', '3')

function image(id: string, tag: string): RuntimeImage {
  return { id, repoTags: [tag], repoDigests: [], size: 1, pinned: false }
}

t.test('idPrefixOf: which strings containerd tries as a truncated ID', async (t) => {
  const table: Array<[string, string | undefined, string]> = [
    ['sha256:4d1f0e2c7a9b', 'sha256:4d1f0e2c7a9b', '12 digits'],
    ['sha256:4', 'sha256:4', 'one digit is enough when unique (digestset has no minimum)'],
    ['sha512:abc', 'sha512:abc', 'any available go-digest algorithm'],
    ['sha256:' + hex('4d1f'), undefined, 'a full ID is an exact lookup, not a prefix'],
    ['sha256:' + hex('4d1f') + '0', undefined, 'longer than an ID: no ID has it as prefix'],
    ['sha256:4D1F', undefined, 'uppercase: the hex of an ID is lowercase'],
    ['md5:4d1f', undefined, 'unknown algorithm: ErrDigestUnsupported, then no entry of that algorithm'],
    ['4d1f0e2c7a9b', undefined, 'bare hex: the kubelet sends 4d1f0e2c7a9b:latest'],
    ['sha256:', undefined, 'nothing after the colon'],
    ['docker.io/library/sha256:4d1f', undefined, 'a name'],
  ]
  for (const [input, want, why] of table) t.equal(idPrefixOf(input), want, `${input}: ${why}`)
  const k = lookupKey('sha256:4d1f')
  t.ok(k.ok && k.key === 'docker.io/library/sha256:4d1f' && k.idPrefix === 'sha256:4d1f', 'name first, then the prefix')
  const plain = lookupKey('nginx')
  t.ok(plain.ok && plain.idPrefix === undefined, 'an ordinary name has no prefix fallback')
})

t.test('per node: the name wins, else exactly one matching ID', async (t) => {
  const index = buildIndex([
    { name: 'one' },
    { name: 'two' },
    { name: 'named' },
    { name: 'none' },
    { name: 'status-only' },
  ])
  index.upsertImages({
    nodeName: 'one',
    images: [image(A, 'docker.io/library/a:1'), image(C, 'docker.io/library/c:1')],
    observedAt: NOW,
  })
  index.upsertImages({
    nodeName: 'two',
    images: [image(A, 'docker.io/library/a:1'), image(B, 'docker.io/library/b:1')],
    observedAt: NOW,
  })
  // A name that happens to read like the prefix: containerd's name lookup comes first.
  index.upsertImages({
    nodeName: 'named',
    images: [
      image(A, 'docker.io/library/a:1'),
      image(B, 'docker.io/library/b:1'),
      image(C, 'docker.io/library/sha256:4d1f'),
    ],
    observedAt: NOW,
  })
  index.upsertImages({
    nodeName: 'none',
    images: [image(C, 'docker.io/library/c:1')],
    observedAt: NOW,
  })
  const nodesFor = (img: string): string[] => {
    const k = lookupKey(img)
    if (!k.ok) return []
    const out: string[] = []
    index.nodesResolving(k)?.forEach((slot) => out.push(index.nameOf(slot)))
    return out.sort()
  }
  t.same(nodesFor('sha256:4d1f0e'), ['named', 'one', 'two'], 'unique everywhere A is')
  t.same(nodesFor('sha256:4d1f'), ['named', 'one'], 'ambiguous on two (A and B); named has it by name')
  t.same(nodesFor('sha256:4d1f9'), ['named', 'two'], 'B alone')
  t.same(nodesFor('sha256:7'), ['named', 'none', 'one'])
  t.same(nodesFor('sha256:5'), [], 'no ID starts with 5')
  t.same(nodesFor(A), ['named', 'one', 'two'], 'the full ID')
  const amb = lookupKey('sha256:4d1f')
  t.same(
    amb.ok ? index.ambiguousIdPrefix(amb) : undefined,
    ['two'],
    'ambiguity is per node, and a name match is no ambiguity',
  )
  t.equal(
    index.nodesResolving(lookupKey('docker.io/library/a:1') as never),
    index.nodesWithImage('docker.io/library/a:1'),
    'names: the key index itself, no copy',
  )

  // IDs leave with their images.
  index.upsertImages({
    nodeName: 'two',
    images: [image(B, 'docker.io/library/b:1')],
    observedAt: NOW,
  })
  t.same(nodesFor('sha256:4d1f'), ['named', 'one', 'two'], 'two now has B only: unique')
  index.removeImages('one')
  index.removeImages('named')
  t.same(nodesFor('sha256:4d1f0e'), [], 'A is gone from every node')
})

t.test('Node.status.images never proves a prefix unique', async (t) => {
  // The kubelet reports at most 50 images, by name: an ID there (none in practice) says nothing
  // about the other images on the node.
  const index = buildIndex([{ name: 'n', statusImages: [A] }])
  const k = lookupKey('sha256:4d1f')
  t.equal(k.ok ? index.nodesResolving(k) : 'bad', undefined)
})

t.test('the decision: allowed where containerd resolves it, and the IDs it could mean when not', async (t) => {
  const index = buildIndex([{ name: 'n1' }])
  index.upsertImages({
    nodeName: 'n1',
    images: [image(A, 'docker.io/library/a:1'), image(B, 'docker.io/library/b:1')],
    observedAt: NOW,
  })
  const run = (img: string) =>
    decide(index, {
      subject: {
        kind: 'Pod',
        namespace: 'default',
        name: 'p',
        operation: 'CREATE',
      },
      template: {
        kind: 'Pod',
        perNode: false,
        mirror: false,
        placement: { tolerations: [] },
        containers: [{ kind: 'container', name: 'c', image: img, pullPolicy: 'Never' }],
      },
      mode: 'enforce',
      now: NOW,
    })
  t.equal(run('sha256:4d1f0e2c7a9b').verdict, 'allow', 'was denied before: containerd runs it')
  const amb = run('sha256:4d1f')
  t.equal(amb.verdict, 'deny', 'ambiguous on the only node: ImageStatus fails there')
  t.same(amb.findings[0]?.suggestions, ['sha256:4d1f0e2c7a9b', 'sha256:4d1f99222222'], 'the two IDs it could mean')
  t.same(
    distinctIds(['sha256:' + hex('ab', '1'), 'sha256:' + hex('ab1111111111', '2')]),
    ['sha256:ab11111111111', 'sha256:ab11111111112'],
    'cut where they differ',
  )
})
