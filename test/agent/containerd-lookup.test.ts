import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CriError } from '../../src/agent/cri.js'
import { lookupKey, parseReference } from '../../src/image/reference.js'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'
import { containerdSkipReason } from '../helpers/containerd.js'
import { containerdWithCri } from '../helpers/containerd-cri.js'
import { buildOciImage, type OciImage } from '../helpers/oci.js'

// The webhook's verdict against the real runtime's: for each image string a container could
// name, ask containerd's CRI ImageStatus exactly as the kubelet would (pkg/kubelet/images
// image_manager.go: applyDefaultImageTag adds ":latest" to a reference with neither tag nor
// digest, then GetImageRef -> ImageStatus) and compare with what the inventory index says
// for a node whose NodeImageSet is that containerd's ListImages.

/** The string the kubelet hands to ImageStatus for a container's `image`. */
function asKubeletSends(image: string): string {
  const parsed = parseReference(image)
  if (parsed.ok && parsed.ref.tag === undefined && parsed.ref.digest === undefined) return image + ':latest'
  return image
}

const skip = await containerdSkipReason()

t.test('truncated image IDs: our verdict is containerd ImageStatus', { skip: skip ?? false }, async (t) => {
  const started = await containerdWithCri(t)
  if (started === undefined) return
  const { ctrd, cri } = started

  // Two images whose IDs share their first three hex digits (found deterministically by
  // building until a pair collides), and a third with a unique ID.
  const byPrefix = new Map<string, OciImage>()
  let pair: [OciImage, OciImage] | undefined
  for (let i = 0; pair === undefined && i < 5000; i++) {
    const image = await buildOciImage({
      names: [`docker.io/neverpull/twin:${i}`],
      content: `twin ${i}`,
    })
    const p = image.configDigest.slice(7, 10)
    const other = byPrefix.get(p)
    if (other !== undefined) pair = [other, image]
    else byPrefix.set(p, image)
  }
  if (pair === undefined) throw new Error('no two images with a common 3-hex ID prefix in 5000 tries')
  const shared = pair[0].configDigest.slice(7, 10)
  let solo: OciImage | undefined
  for (let i = 0; solo === undefined; i++) {
    const image = await buildOciImage({
      names: ['docker.io/neverpull/solo:1'],
      content: `solo ${i}`,
    })
    if (image.configDigest[7] !== shared[0]) solo = image
  }
  for (const image of [...pair, solo]) {
    const path = join(ctrd.dir, `${image.configDigest.slice(7, 19)}.tar`)
    await writeFile(path, image.tar)
    await ctrd.importImage(path)
  }

  const index = new InventoryIndex({ staleAfterMs: 60_000 })
  index.upsertImages({
    nodeName: 'n1',
    images: await cri.listImages(),
    observedAt: Date.now(),
  })
  const soloHex = solo.configDigest.slice(7)

  const probes: Array<[string, string]> = [
    ['sha256:' + soloHex.slice(0, 12), 'the usual 12-digit short ID'],
    ['sha256:' + soloHex.slice(0, 1), 'a single hex digit, unique among these images'],
    ['sha256:' + shared, 'a prefix two images share: ambiguous, an error'],
    ['sha256:' + shared.slice(0, 2), 'a shorter shared prefix: ambiguous'],
    ['sha256:' + pair[0].configDigest.slice(7, 20), 'long enough to tell the twins apart'],
    [solo.configDigest, 'the full ID'],
    ['sha256:' + soloHex + '0', 'one digit too many'],
    ['sha256:' + soloHex.slice(0, 12).toUpperCase(), 'uppercase hex is no ID'],
    ['sha512:' + soloHex.slice(0, 12), 'another algorithm'],
    [soloHex.slice(0, 12), 'bare hex: the kubelet adds :latest, and that is no ID'],
    ['docker.io/library/sha256:' + soloHex.slice(0, 12), 'the docker-ref spelling is a name, not an ID'],
    ['neverpull/solo:1', 'by name'],
    ['sha256:' + (shared[0] === 'f' ? '0' : 'f').repeat(5), 'a prefix of nothing'],
  ]
  for (const [image, why] of probes) {
    const sent = asKubeletSends(image)
    let runtime: 'present' | 'absent' | 'error'
    try {
      runtime = (await cri.imageStatus(sent)) === undefined ? 'absent' : 'present'
    } catch (err) {
      t.type(err, CriError, `${image}: a runtime error, not a transport failure`)
      runtime = 'error'
    }
    const lookup = lookupKey(image)
    const ours = lookup.ok && index.nodesResolving(lookup)?.has(index.slotOf('n1')!) === true ? 'present' : 'absent'
    t.equal(
      ours,
      runtime === 'present' ? 'present' : 'absent',
      `${image} (${why}): containerd says ${runtime}, we say ${ours}`,
    )
    if (runtime === 'error')
      t.same(lookup.ok ? index.ambiguousIdPrefix(lookup) : [], ['n1'], `${image}: reported as ambiguous on n1`)
  }
  // containerd would take bare hex as an ID prefix (digest.Parse: invalid format, so a search
  // over hex values of any algorithm); only the kubelet's ":latest" keeps it from doing so.
  t.ok(await cri.imageStatus(soloHex.slice(0, 12)), 'bare hex sent as is (crictl inspecti) is an ID prefix')
  // The twins themselves really are two images, both present by name.
  for (const twin of pair) t.ok(await cri.imageStatus(twin.names[0]!), `${twin.names[0]} present`)
})
