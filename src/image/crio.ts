import { dockerRef, parseReference } from './reference.js'

// How CRI-O finds the image a container names (issue 10 item 2). CRI-O's ImageStatus
// (server/image_status.go storageImageStatus) first tries the string as an
// image ID or ID prefix (internal/storage/image.go HeuristicallyTryResolvingStringAsIDPrefix:
// a full 64-hex ID, or a string of 3+ characters that prefixes a stored ID), then asks
// CandidatesForPotentiallyShortImageName, which calls containers/image v5
// pkg/shortnames.Resolve with the short-name mode forced to "disabled" (so it never fails
// on an ambiguous list; the newest cri-o main drops that line, and an "enforcing"
// registries.conf would then refuse a short name with several search registries):
//   - a name whose first component is a registry (contains "." or ":", or is "localhost")
//     is its own only candidate, normalised (docker.io/x -> docker.io/library/x);
//   - any other name is short: a short-name alias for it (registries.conf [aliases], merged
//     over registries.conf.d) is the only candidate, with the tag/digest as written; without
//     one, each unqualified-search registry prefixes it, in order, and the first candidate
//     the node has wins. docker.io is not implied; no search registry means no image.
// The kubelet adds ":latest" to a reference with neither tag nor digest before it asks
// (pkg/kubelet/images image_manager.go applyDefaultImageTag), so bare hex reaches CRI-O as
// `4d1f...:latest`, which prefixes no ID: through the kubelet the ID path never applies, and
// `sha256:<hex>` is the short name "sha256" with a tag.

/** The short-name configuration a CRI-O node resolves with, as its agent publishes it. */
export interface ShortNameConfig {
  readonly unqualifiedSearchRegistries: readonly string[]
  /** Short name as written (`myapp`, `me/app`) -> fully qualified repository. */
  readonly shortNameAliases: Readonly<Record<string, string>>
}

// containers/image docker/reference (its own fork of distribution/reference): the name,
// domain included, is at most 255 characters.
const NAME_TOTAL_LENGTH_MAX = 255
const DEFAULT_TAG = 'latest'

export interface UnnormalizedName {
  /** As written: undefined when the name has no first component that parses as a host. */
  domain: string | undefined
  /** `domain/path` as written, no tag or digest. */
  repository: string
  tag: string | undefined
  digest: string | undefined
}

/** The string the kubelet hands the runtime for a container's `image`. */
export function kubeletImageString(image: string): string {
  const parsed = parseReference(image)
  return parsed.ok && parsed.ref.tag === undefined && parsed.ref.digest === undefined
    ? image + ':' + DEFAULT_TAG
    : image
}

const ALNUM = '[a-z0-9]+'
const SEP = '(?:[._]|__|[-]+)'
const COMPONENT = `${ALNUM}(?:${SEP}${ALNUM})*`
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])'
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[(?:[a-fA-F0-9:]+)\\])(?::[0-9]+)?`
/** reference.Parse's anchored grammar, not normalising: 1 domain, 2 path, 3 tag, 4 digest. */
const UNNORMALIZED_RE = new RegExp(
  `^(?:(${DOMAIN})/)?(${COMPONENT}(?:/${COMPONENT})*)(?::([\\w][\\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$`,
)

/** containers/image reference.Parse: the name as written, or undefined when it does not parse. */
export function parseUnnormalized(s: string): UnnormalizedName | undefined {
  const m = UNNORMALIZED_RE.exec(s)
  if (m === null) return undefined
  const repository = m[1] === undefined ? (m[2] as string) : `${m[1]}/${m[2] as string}`
  if (repository.length > NAME_TOTAL_LENGTH_MAX) return undefined
  return { domain: m[1], repository, tag: m[3], digest: m[4] }
}

/** shortnames.parseUnnormalizedShortName: no registry written (a host has "." or ":", or is localhost). */
export function isShortName(name: UnnormalizedName): boolean {
  const d = name.domain
  return d === undefined || !(d.includes('.') || d.includes(':') || d === 'localhost')
}

/**
 * The lookup keys CRI-O tries, in order, for a container `image` on a node with this
 * configuration; [] when CRI-O would find nothing or fail (no search registry, an invalid
 * candidate). `config` undefined: the node's configuration is not known, and only a fully
 * qualified name can be answered (`short: true` tells the caller the answer is unknown).
 */
export function crioCandidateKeys(
  image: string,
  config: ShortNameConfig | undefined,
): { keys: string[]; short: boolean } {
  const sent = kubeletImageString(image)
  const name = parseUnnormalized(sent)
  if (name === undefined) return { keys: [], short: false }
  if (!isShortName(name)) {
    const parsed = parseReference(sent)
    return { keys: parsed.ok ? [dockerRef(parsed.ref)] : [], short: false }
  }
  if (config === undefined) return { keys: [], short: true }
  const alias = Object.hasOwn(config.shortNameAliases, name.repository)
    ? config.shortNameAliases[name.repository]
    : undefined
  const suffix = (name.tag === undefined ? '' : ':' + name.tag) + (name.digest === undefined ? '' : '@' + name.digest)
  const candidates =
    alias !== undefined && alias !== ''
      ? [alias + suffix]
      : config.unqualifiedSearchRegistries.map((reg) => `${reg}/${sent}`)
  const keys: string[] = []
  for (const candidate of candidates) {
    const parsed = parseReference(candidate)
    // shortnames.Resolve fails as a whole on one bad candidate.
    if (!parsed.ok) return { keys: [], short: true }
    const key = dockerRef(parsed.ref)
    if (!keys.includes(key)) keys.push(key)
  }
  return { keys, short: true }
}

/** Podman and Buildah name local builds `localhost/NAME:TAG`: the key of that spelling of a short name. */
export function localhostKey(image: string): string | undefined {
  const sent = kubeletImageString(image)
  const name = parseUnnormalized(sent)
  if (name === undefined || !isShortName(name)) return undefined
  const parsed = parseReference('localhost/' + sent)
  return parsed.ok ? dockerRef(parsed.ref) : undefined
}
