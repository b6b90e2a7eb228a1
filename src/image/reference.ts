import type { RuntimeImage } from '../api/types.js'

// Image references exactly as github.com/distribution/reference v0.6 reads them
// (ParseNormalizedNamed, ParseDockerRef, FamiliarString), because that is what the kubelet
// validates a container's `image` with and what containerd's CRI normalises before it looks an
// image up. Matching them character for character is the whole point: a looser parser would
// call an image present that the kubelet cannot find, a stricter one would deny valid pods.

export interface ImageReference {
  /** `docker.io`, `localhost:5000`, `[::1]:5000`, `ghcr.io`; `''` only in the rare case noted in parseReference. */
  domain: string
  /** `library/nginx`, `me/app`, `o/a` */
  path: string
  /** As written; undefined when none. */
  tag?: string
  /** `sha256:<hex>` when written. */
  digest?: string
}

export type Parsed = { ok: true; ref: ImageReference } | { ok: false; error: string }

/**
 * How one container `image` is looked up. `key`: the docker-ref form containerd matches names
 * against (or the image ID for a bare digest). `idPrefix`: set when the string, as the kubelet
 * passes it, is `<algorithm>:<truncated hex>`, which containerd also tries as a unique prefix of
 * an image ID once no name matches (see `idPrefixOf`).
 */
export interface ImageLookup {
  /** The container's `image` as written (runtimes that resolve short names differently start from it). */
  image: string
  key: string
  ref?: ImageReference
  idPrefix?: string
}

export type LookupKey = ({ ok: true } & ImageLookup) | { ok: false; error: string }

const DEFAULT_DOMAIN = 'docker.io'
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io'
const OFFICIAL_REPO_PREFIX = 'library/'
const DEFAULT_TAG = 'latest'
/** RepositoryNameTotalLengthMax; since distribution/reference v0.6 it bounds the path only, not the domain. */
const REPOSITORY_NAME_MAX = 255
const TAG_MAX = 128

// The grammar, built the way regexp.go builds it. JavaScript's backtracking matcher and Go's
// RE2 both pick the leftmost-first alternative, so the captures (where the domain ends) agree.
const ALPHANUMERIC = '[a-z0-9]+'
const SEPARATOR = '(?:[._]|__|[-]+)'
const PATH_COMPONENT = `${ALPHANUMERIC}(?:${SEPARATOR}${ALPHANUMERIC})*`
const REMOTE_NAME = `${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`
const DOMAIN_NAME_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])'
const DOMAIN_NAME = `${DOMAIN_NAME_COMPONENT}(?:\\.${DOMAIN_NAME_COMPONENT})*`
const IPV6_ADDRESS = '\\[(?:[a-fA-F0-9:]+)\\]'
const DOMAIN_AND_PORT = `(?:${DOMAIN_NAME}|${IPV6_ADDRESS})(?::[0-9]+)?`
const TAG = '[\\w][\\w.-]{0,127}'
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}'

/** Groups: 1 domain (may be absent), 2 path, 3 tag, 4 digest. */
const REFERENCE_RE = new RegExp(`^(?:(${DOMAIN_AND_PORT})/)?(${REMOTE_NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`)
const ANCHORED_PATH_COMPONENT_RE = new RegExp(`^${PATH_COMPONENT}$`)
const ANCHORED_DOMAIN_RE = new RegExp(`^${DOMAIN_AND_PORT}$`)
const ANCHORED_TAG_RE = new RegExp(`^${TAG}$`)
const IDENTIFIER_RE = /^[a-f0-9]{64}$/
const LOWER_HEX_RE = /^[a-f0-9]+$/
const WHITESPACE_RE = /\s/
// go-digest with crypto/sha256 and crypto/sha512 linked (as in the kubelet and containerd).
const DIGEST_ONLY_RE = /^(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/
/** An available go-digest algorithm and some lowercase hex: a candidate truncated image ID. */
const ID_PREFIX_RE = /^(sha256|sha384|sha512):([a-f0-9]+)$/
const DIGEST_HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 }

/**
 * ParseNormalizedNamed: a familiar or full name, with optional tag and digest, normalised.
 * `nginx` -> docker.io + library/nginx; `index.docker.io/x` -> docker.io + library/x.
 * One quirk kept on purpose: a first component with a `.` or `:` that is not a valid host
 * (`foo_bar.com/x`) is read by distribution as a path with no domain at all; domain is `''`.
 */
export function parseReference(input: string): Parsed {
  if (input.length === 64 && IDENTIFIER_RE.test(input)) {
    return fail(input, 'cannot specify 64-byte hexadecimal strings (that is an image ID, not a name)')
  }

  // splitDockerDomain
  let domain: string
  let remainder: string
  const slash = input.indexOf('/')
  if (slash < 0) {
    domain = DEFAULT_DOMAIN
    remainder = OFFICIAL_REPO_PREFIX + input
  } else {
    const first = input.slice(0, slash)
    if (first === 'localhost') {
      domain = first
      remainder = input.slice(slash + 1)
    } else if (first === LEGACY_DEFAULT_DOMAIN) {
      domain = DEFAULT_DOMAIN
      remainder = input.slice(slash + 1)
    } else if (first.includes('.') || first.includes(':') || hasUpper(first)) {
      domain = first
      remainder = input.slice(slash + 1)
    } else {
      domain = DEFAULT_DOMAIN
      remainder = input
    }
    if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_REPO_PREFIX + remainder
  }

  const colon = remainder.indexOf(':')
  if (hasUpper(colon < 0 ? remainder : remainder.slice(0, colon))) {
    return fail(input, 'repository name must be lowercase')
  }

  const m = REFERENCE_RE.exec(domain + '/' + remainder)
  if (m === null) return fail(input, explain(input))

  const path = m[2] as string
  if (path.length > REPOSITORY_NAME_MAX) {
    return fail(
      input,
      `repository name must not be more than ${REPOSITORY_NAME_MAX} characters (it has ${path.length})`,
    )
  }
  const digest = m[4]
  if (digest !== undefined) {
    const problem = digestProblem(digest)
    if (problem !== undefined) return fail(input, problem)
  }
  // All four keys always present: one object shape for every reference.
  return { ok: true, ref: { domain: m[1] ?? '', path, tag: m[3], digest } }
}

/** ParseDockerRef form: `domain/path@digest` when there is a digest (tag dropped), else `domain/path:tag` (default `latest`). */
export function dockerRef(ref: ImageReference): string {
  const name = repositoryOf(ref)
  if (ref.digest !== undefined) return name + '@' + ref.digest
  return name + ':' + (ref.tag ?? DEFAULT_TAG)
}

/** `domain/path` */
export function repositoryOf(ref: ImageReference): string {
  return ref.domain === '' ? ref.path : ref.domain + '/' + ref.path
}

/** FamiliarString: the short form people type, tag and digest kept as written. */
export function familiarName(ref: ImageReference): string {
  let name: string
  if (ref.domain === DEFAULT_DOMAIN) {
    name = ref.path
    if (name.startsWith(OFFICIAL_REPO_PREFIX) && name.indexOf('/', OFFICIAL_REPO_PREFIX.length) < 0) {
      name = name.slice(OFFICIAL_REPO_PREFIX.length)
    }
  } else {
    name = repositoryOf(ref)
  }
  if (ref.tag !== undefined) name += ':' + ref.tag
  if (ref.digest !== undefined) name += '@' + ref.digest
  return name
}

/**
 * The key to look up in a node's image index for a container's `image`, as the kubelet and
 * containerd resolve it: a bare digest (`sha256:<hex>`) is an image ID (LocalResolve); anything
 * else must parse (the kubelet refuses it otherwise) and is looked up in docker-ref form.
 */
export function lookupKey(image: string): LookupKey {
  let result: LookupKey
  if (DIGEST_ONLY_RE.test(image)) result = { ok: true, image, key: image }
  else {
    const parsed = parseReference(image)
    if (!parsed.ok) result = parsed
    else {
      const idPrefix = idPrefixOf(image)
      const key = dockerRef(parsed.ref)
      result =
        idPrefix === undefined
          ? { ok: true, image, key, ref: parsed.ref }
          : { ok: true, image, key, ref: parsed.ref, idPrefix }
    }
  }
  return Object.freeze(result)
}

const LOOKUP_CACHE_SIZE = 4096

/**
 * lookupKey, remembered. The same few images come back in request after request; a bounded
 * cache saves the grammar's regex on the hot path. Cleared whole when full: no LRU
 * bookkeeping per hit. One belongs to the inventory index, so no module holds the state.
 */
export class LookupCache {
  private readonly entries = new Map<string, LookupKey>()

  key(image: string): LookupKey {
    const cached = this.entries.get(image)
    if (cached !== undefined) return cached
    const result = lookupKey(image)
    if (this.entries.size >= LOOKUP_CACHE_SIZE) this.entries.clear()
    this.entries.set(image, result)
    return result
  }
}

/**
 * The truncated image ID containerd's CRI will try for this container `image`, or undefined.
 *
 * containerd (internal/cri/server/images/service.go LocalResolve; pkg/cri/server/helpers.go
 * localResolve in 1.6/1.7) looks the string up as a name in docker-ref form first; when no
 * name matches, it hands the string as written to the image store's Get, which calls
 * go-digest v1.0.0 digestset.Set.Lookup (internal/cri/store/image/image.go store.get; 1.6
 * vendors the same code as docker/distribution/digestset). Lookup parses the string with
 * digest.Parse: `sha256:4d1f` fails with ErrDigestInvalidLength (not InvalidFormat), so it is
 * searched as algorithm `sha256` plus hex prefix `4d1f`; one match is the image, two are
 * ErrDigestAmbiguous (the kubelet's ImageStatus fails: not present), none is not found.
 * A string without `:` would be searched as a bare hex prefix, but the kubelet never sends
 * one: it appends `:latest` to a reference with no tag and no digest (pkg/kubelet/images
 * image_manager.go applyDefaultImageTag), so bare hex arrives as `4d1f...:latest`, whose
 * "algorithm" `4d1f...` matches no image. Uppercase hex never matches (IDs are lowercase).
 */
export function idPrefixOf(image: string): string | undefined {
  const m = ID_PREFIX_RE.exec(image)
  if (m === null) return undefined
  const full = DIGEST_HEX_LENGTH[m[1] as string] as number
  // Full length is an exact ID (handled as a digest); longer can be no ID's prefix.
  return (m[2] as string).length < full ? image : undefined
}

/** Every key a runtime image answers to: its tags and digests in docker-ref form, and its ID. */
export function runtimeImageKeys(image: RuntimeImage): string[] {
  const keys: string[] = []
  for (const name of image.repoTags) addNameKey(keys, name)
  for (const name of image.repoDigests) addNameKey(keys, name)
  const id = idKey(image.id)
  if (id !== undefined && !keys.includes(id)) keys.push(id)
  return keys
}

/** A `Node.status.images[].names` entry as a lookup key; undefined when it cannot be read. */
export function nodeStatusImageKey(name: string): string | undefined {
  const id = idKey(name)
  if (id !== undefined) return id
  const parsed = parseReference(name)
  return parsed.ok ? dockerRef(parsed.ref) : undefined
}

/** True for an image-ID key (`sha256:<hex>`); docker-ref keys always contain a `/`. */
export function isIdKey(key: string): boolean {
  return !key.includes('/')
}

/** `domain/path` of a docker-ref key; undefined for an image-ID key. */
export function repositoryOfKey(key: string): string | undefined {
  if (isIdKey(key)) return undefined
  const at = key.indexOf('@')
  if (at >= 0) return key.slice(0, at)
  const colon = key.lastIndexOf(':')
  return colon > key.lastIndexOf('/') ? key.slice(0, colon) : key
}

/** Familiar form of a key for messages: `docker.io/library/nginx:1.27` -> `nginx:1.27`; IDs cut to 12 hex. */
export function shortRef(key: string): string {
  if (isIdKey(key)) {
    const colon = key.indexOf(':')
    return colon < 0 ? key.slice(0, 12) : key.slice(0, colon + 13)
  }
  if (!key.startsWith(DEFAULT_DOMAIN + '/')) return key
  const rest = key.slice(DEFAULT_DOMAIN.length + 1)
  if (rest.startsWith(OFFICIAL_REPO_PREFIX) && rest.indexOf('/', OFFICIAL_REPO_PREFIX.length) < 0) {
    return rest.slice(OFFICIAL_REPO_PREFIX.length)
  }
  return rest
}

function addNameKey(keys: string[], name: string): void {
  const parsed = parseReference(name)
  if (!parsed.ok) return
  const key = dockerRef(parsed.ref)
  if (!keys.includes(key)) keys.push(key)
}

/** An image ID as a key: a valid digest as is, a bare 64-hex ID (CRI-O lists those) prefixed. */
function idKey(id: string): string | undefined {
  if (DIGEST_ONLY_RE.test(id)) return id
  if (id.length === 64 && IDENTIFIER_RE.test(id)) return 'sha256:' + id
  return undefined
}

function hasUpper(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 65 && c <= 90) return true
    if (c >= 128) return s.toLowerCase() !== s
  }
  return false
}

function fail(input: string, reason: string): { ok: false; error: string } {
  const shown = input.length > 200 ? input.slice(0, 200) + '...' : input
  return { ok: false, error: `invalid reference ${JSON.stringify(shown)}: ${reason}` }
}

/** What go-digest would say about a digest the grammar accepted (or did not). */
function digestProblem(digest: string): string | undefined {
  const colon = digest.indexOf(':')
  if (colon <= 0)
    return `invalid digest ${JSON.stringify(digest)}: expected algorithm:hex, e.g. sha256:<64 hex characters>`
  const algorithm = digest.slice(0, colon)
  const hex = digest.slice(colon + 1)
  const size = algorithm === 'sha256' ? 64 : algorithm === 'sha384' ? 96 : algorithm === 'sha512' ? 128 : 0
  if (size === 0) return `unsupported digest algorithm ${JSON.stringify(algorithm)} (sha256, sha384 or sha512)`
  if (hex.length !== size) return `invalid digest: ${algorithm} needs ${size} hex characters, got ${hex.length}`
  if (!LOWER_HEX_RE.test(hex)) return `invalid digest: ${algorithm} must be lowercase hex (0-9, a-f)`
  return undefined
}

/** Only on the failure path: find the part a person got wrong, to name it in the message. */
function explain(input: string): string {
  if (input === '') return 'image reference is empty'
  if (WHITESPACE_RE.test(input)) return 'must not contain whitespace'
  if (input.startsWith('[') && !input.includes('/'))
    return 'a registry host needs a repository after it, e.g. [::1]:5000/app'
  let rest = input
  const at = input.indexOf('@')
  if (at >= 0) {
    const digest = input.slice(at + 1)
    rest = input.slice(0, at)
    if (digest === '') return 'nothing after "@" (expected a digest such as sha256:<64 hex characters>)'
    if (digest.includes('@')) return 'more than one "@"'
    const problem = digestProblem(digest)
    if (problem !== undefined) return problem
  }
  let name = rest
  const colon = rest.lastIndexOf(':')
  if (colon > rest.lastIndexOf('/')) {
    const tag = rest.slice(colon + 1)
    name = rest.slice(0, colon)
    if (tag === '') return 'nothing after ":" (expected a tag)'
    if (tag.length > TAG_MAX) return `tag must not be more than ${TAG_MAX} characters (it has ${tag.length})`
    if (!ANCHORED_TAG_RE.test(tag)) {
      return `invalid tag ${JSON.stringify(tag)}: letters, digits, "_", "." and "-", not starting with "." or "-"`
    }
  }
  if (name === '') return 'repository name is empty'
  const components = name.split('/')
  for (let i = 0; i < components.length; i++) {
    const c = components[i] as string
    if (c === '') return 'repository name has an empty path component (leading, trailing or double "/")'
    if (ANCHORED_PATH_COMPONENT_RE.test(c)) continue
    if (i === 0 && components.length > 1 && ANCHORED_DOMAIN_RE.test(c)) continue
    if (i === 0 && components.length > 1 && (c.includes('.') || c.includes(':'))) {
      return `invalid registry host ${JSON.stringify(c)}`
    }
    if (c.includes(':')) return 'too many ":" (a tag cannot contain ":")'
    if (hasUpper(c)) return 'repository name must be lowercase'
    return `invalid path component ${JSON.stringify(c)}: lowercase letters and digits, separated by one ".", one or two "_", or "-"s`
  }
  return 'invalid reference format'
}
