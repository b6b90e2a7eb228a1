import type { RuntimeImage } from '../api/types.js'
import { CriError } from './cri.js'

// Names the runtime lists but cannot resolve (issue 10 item 8). containerd's CRI lists every
// stored image name normalised (`rawname:tag` -> `docker.io/library/rawname:tag`), but looks a
// requested name up by its docker-ref form among the names as stored: a name stored raw
// (`ctr -n k8s.io images tag SRC rawname:tag`, containerd#8848) is listed, yet ImageStatus on
// it - which is what the kubelet asks before it starts a container - finds nothing. Only
// ImageStatus tells the truth, so the agent asks it once per (name, image) when the pair
// first appears, remembers the answer across intervals, and publishes only confirmed names.

/** ImageStatus calls per interval at most: a node with 1,000 new images confirms over several intervals. */
export const DEFAULT_CONFIRM_BUDGET = 200
/** A name the runtime did not resolve is asked again after this long (it may have been re-tagged). */
export const DEFAULT_RECHECK_MS = 5 * 60_000
const CONCURRENCY = 4

// gRPC codes that say the runtime itself is unwell, not that the name is unknown.
const UNAVAILABLE = 14
const DEADLINE_EXCEEDED = 4
const CANCELLED = 1
const UNIMPLEMENTED = 12

export interface ConfirmOptions {
  budget?: number
  recheckMs?: number
}

export interface ConfirmResult {
  /** The listing with only the names the runtime resolves to that image. */
  images: RuntimeImage[]
  /** Pairs not yet asked because the interval's budget ran out: the listing is not ready to publish. */
  pending: number
  /** ImageStatus calls made this time. */
  calls: number
  /** Listed names the runtime does not resolve to their image, sorted. */
  unresolved: string[]
  /** false when the runtime does not implement ImageStatus: the listing is trusted as it is. */
  enabled: boolean
}

export interface NameConfirmer {
  confirm(images: readonly RuntimeImage[], now: number): Promise<ConfirmResult>
}

interface Answer {
  resolves: boolean
  at: number
}

/** A name of an image, by image ID then name: what ImageStatus said about that pair. */
type Answers = Map<string, Map<string, Answer>>

interface Pair {
  name: string
  id: string
}

function nameCount(image: RuntimeImage): number {
  return image.repoTags.length + image.repoDigests.length
}

/** The image's k-th name, tags then digests: a walk over both without an array for them. */
function nameAt(image: RuntimeImage, k: number): string {
  const tags = image.repoTags.length
  return (k < tags ? image.repoTags[k] : image.repoDigests[k - tags])!
}

export function createNameConfirmer(
  imageStatus: (image: string) => Promise<RuntimeImage | undefined>,
  options: ConfirmOptions = {},
): NameConfirmer {
  const budget = Math.max(1, options.budget ?? DEFAULT_CONFIRM_BUDGET)
  const recheckMs = options.recheckMs ?? DEFAULT_RECHECK_MS
  /**
   * Only pairs in the latest listing are kept. Keyed by the strings the listing already
   * holds, and an image's names are kept in one map reused while they stay the same: an
   * unchanged listing costs one map of image IDs, not a string and an entry per name and
   * a copy of every image, every interval (the agent's memory budget, docs/BENCHMARKS.md).
   */
  let answers: Answers = new Map()
  let enabled = true

  async function ask(name: string, id: string): Promise<boolean> {
    try {
      const found = await imageStatus(name)
      // Resolving to another image than the one it is listed under is not this image's name.
      return found !== undefined && found.id === id
    } catch (err) {
      if (!(err instanceof CriError) || err.code === undefined) throw err
      if (err.code === UNAVAILABLE || err.code === DEADLINE_EXCEEDED || err.code === CANCELLED) throw err
      if (err.code === UNIMPLEMENTED) {
        enabled = false
        throw err
      }
      // Any other error is what the kubelet would get too: the name is not usable.
      return false
    }
  }

  /** Every answer `from` has that `into` lacks or holds older: what a failed tick did learn. */
  function merge(into: Answers, from: Answers): void {
    for (const [id, names] of from) {
      const kept = into.get(id)
      if (kept === undefined) into.set(id, new Map(names))
      else if (kept !== names) for (const [name, a] of names) kept.set(name, a)
    }
  }

  return {
    async confirm(images, now) {
      if (!enabled)
        return {
          images: [...images],
          pending: 0,
          calls: 0,
          unresolved: [],
          enabled,
        }
      const next: Answers = new Map()
      // New pairs first: a backlog of re-checks must not keep a new image from being published.
      const fresh: Pair[] = []
      const recheck: Pair[] = []
      /** Pairs queued above: an image listed twice is asked about once. */
      const queued = new Set<string>()
      const queue = (to: Pair[], name: string, id: string): void => {
        const pair = `${name} ${id}`
        if (queued.has(pair)) return
        queued.add(pair)
        to.push({ name, id })
      }
      for (const image of images) {
        const known = answers.get(image.id)
        let names = next.get(image.id)
        if (names === undefined) {
          // The image's map from the last listing, as it is, when it holds exactly this
          // listing's names; a copy without the names gone, otherwise.
          const count = nameCount(image)
          let same = known !== undefined && known.size === count
          for (let k = 0; same && k < count; k++) same = known?.has(nameAt(image, k)) === true
          names = same && known !== undefined ? known : new Map()
          next.set(image.id, names)
        }
        for (let k = 0, count = nameCount(image); k < count; k++) {
          const name = nameAt(image, k)
          const a = names.get(name) ?? known?.get(name)
          if (a === undefined) {
            queue(fresh, name, image.id)
            continue
          }
          if (names !== known) names.set(name, a)
          if (!a.resolves && now - a.at >= recheckMs) queue(recheck, name, image.id)
        }
      }
      const todo =
        fresh.length >= budget ? fresh.slice(0, budget) : [...fresh, ...recheck.slice(0, budget - fresh.length)]
      const pending = Math.max(0, fresh.length - budget)
      let calls = 0
      // Answers go into maps of their own, so a map shared with the last listing only
      // changes once the whole batch is in.
      const learned: Answers = new Map()
      try {
        for (let i = 0; i < todo.length; i += CONCURRENCY) {
          const batch = todo.slice(i, i + CONCURRENCY)
          const results = await Promise.all(batch.map((p) => ask(p.name, p.id)))
          calls += batch.length
          batch.forEach((p, k) => {
            let names = learned.get(p.id)
            if (names === undefined) learned.set(p.id, (names = new Map<string, Answer>()))
            names.set(p.name, { resolves: results[k]!, at: now })
          })
        }
      } catch (err) {
        if (!enabled)
          return {
            images: [...images],
            pending: 0,
            calls,
            unresolved: [],
            enabled,
          }
        // The runtime went away mid-way: keep what it did answer.
        merge(answers, next)
        merge(answers, learned)
        throw err
      }
      // Pairs never asked (beyond the budget) are not in `next`: asked next time, as new.
      for (const [id, names] of learned) {
        const into = next.get(id)
        if (into === undefined) next.set(id, names)
        else for (const [name, a] of names) into.set(name, a)
      }
      answers = next
      const unresolved = new Set<string>()
      const answer = (image: RuntimeImage, name: string): Answer | undefined => next.get(image.id)?.get(name)
      const out = images.map((image) => {
        let all = true
        for (let k = 0, count = nameCount(image); k < count; k++) {
          const name = nameAt(image, k)
          const a = answer(image, name)
          if (a?.resolves === true) continue
          all = false
          if (a !== undefined) unresolved.add(name)
        }
        // Every name confirmed (the usual case): the image as listed, not a copy.
        if (all) return image
        const keep = (name: string): boolean => answer(image, name)?.resolves === true
        return {
          ...image,
          repoTags: image.repoTags.filter(keep),
          repoDigests: image.repoDigests.filter(keep),
        }
      })
      return {
        images: out,
        pending,
        calls,
        unresolved: [...unresolved].sort(),
        enabled,
      }
    },
  }
}
