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

/** Listed, not asked yet: never published. */
const PENDING: Answer = Object.freeze({ resolves: false, at: Number.NaN })

export function createNameConfirmer(
  imageStatus: (image: string) => Promise<RuntimeImage | undefined>,
  options: ConfirmOptions = {},
): NameConfirmer {
  const budget = Math.max(1, options.budget ?? DEFAULT_CONFIRM_BUDGET)
  const recheckMs = options.recheckMs ?? DEFAULT_RECHECK_MS
  /** `name id` -> what ImageStatus said; only pairs in the latest listing are kept. */
  let answers = new Map<string, Answer>()
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
      const next = new Map<string, Answer>()
      // New pairs first: a backlog of re-checks must not keep a new image from being published.
      const fresh: Array<{ pair: string; name: string; id: string }> = []
      const recheck: Array<{ pair: string; name: string; id: string }> = []
      for (const image of images) {
        for (const name of [...image.repoTags, ...image.repoDigests]) {
          const pair = `${name} ${image.id}`
          if (next.has(pair)) continue
          const known = answers.get(pair)
          if (known === undefined) {
            next.set(pair, PENDING)
            fresh.push({ pair, name, id: image.id })
            continue
          }
          next.set(pair, known)
          if (!known.resolves && now - known.at >= recheckMs) recheck.push({ pair, name, id: image.id })
        }
      }
      const todo =
        fresh.length >= budget ? fresh.slice(0, budget) : [...fresh, ...recheck.slice(0, budget - fresh.length)]
      const pending = Math.max(0, fresh.length - budget)
      let calls = 0
      try {
        for (let i = 0; i < todo.length; i += CONCURRENCY) {
          const batch = todo.slice(i, i + CONCURRENCY)
          const results = await Promise.all(batch.map((p) => ask(p.name, p.id)))
          calls += batch.length
          batch.forEach((p, k) => next.set(p.pair, { resolves: results[k]!, at: now }))
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
        for (const [pair, a] of next) if (a !== PENDING) answers.set(pair, a)
        throw err
      }
      // Pairs still pending are asked next time, as new.
      for (const [pair, a] of next) if (a === PENDING) next.delete(pair)
      answers = next
      const unresolved = new Set<string>()
      const out = images.map((image) => {
        const keep = (name: string): boolean => {
          const a = next.get(`${name} ${image.id}`)
          if (a !== undefined && a !== PENDING && !a.resolves) unresolved.add(name)
          return a?.resolves === true
        }
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
