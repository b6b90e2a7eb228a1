import { createHash } from 'node:crypto'
import {
  GROUP,
  NODE_IMAGE_SET_KIND,
  VERSION,
  type NodeImageSet,
  type NodeImageSetCondition,
  type NodeImageSetImageFilesystem,
  type RuntimeImage,
  type RuntimeInfo,
} from '../api/types.js'
import { createNameConfirmer, DEFAULT_CONFIRM_BUDGET } from './confirm.js'
import type { CriClient } from './cri.js'
import type { ContainerdClient, ImagesElsewhere } from './containerd.js'
import {
  DEFAULT_ALIAS_CACHE,
  DEFAULT_REGISTRIES_CONF,
  DEFAULT_REGISTRIES_CONF_DIR,
  readShortNameConfig,
  type RegistriesConfPaths,
} from './registries-conf.js'
import type { NodeImageSetStatus, Publisher } from './publish.js'
import { silentLogger, type Logger } from '../util/logger.js'
import { errorMessage } from '../util/guards.js'
import { systemClock, type Clock } from '../util/clock.js'
import { backoffDelay as delayFor } from '../util/backoff.js'

export const DEFAULT_INTERVAL_MS = 10_000
export const DEFAULT_HEARTBEAT_MS = 5 * 60_000
export const DEFAULT_BACKOFF_INITIAL_MS = 1_000
// Below the heartbeat, so a failing agent still reports at least as often as a healthy one.
export const DEFAULT_BACKOFF_MAX_MS = 60_000

export const CONDITION_RUNTIME_REACHABLE = 'RuntimeReachable'
export const CONDITION_PUBLISHED = 'Published'

export type { Clock }
export { systemClock }

export type PublishedObject = 'spec' | 'status'

/** What each tick found, for metrics; every method is called synchronously and must not throw. */
export interface AgentObserver {
  /** The runtime listed `count` images. */
  runtimeListed(count: number): void
  /** Listing images from the runtime failed. */
  runtimeFailed(): void
  /** One server-side apply of the spec or the status, at `at` (ms). */
  published(object: PublishedObject, ok: boolean, at: number): void
  /** Images outside k8s.io (containerd), and the image filesystem's usage, when known. */
  nodeFacts?(imagesElsewhere: number | undefined, imageFsUsedPercent: number | undefined): void
}

const NO_OBSERVER: AgentObserver = { runtimeListed() {}, runtimeFailed() {}, published() {} }

export interface AgentOptions {
  nodeName: string
  cri: Pick<CriClient, 'listImages' | 'imageStatus' | 'version'>
  /** containerd's own API on the same socket: images outside k8s.io. Asked only when the runtime is containerd. */
  containerd?: Pick<ContainerdClient, 'listImagesElsewhere'>
  /** The image filesystem's usage (CRI ImageFsInfo and statfs), for the GC-risk warnings. */
  imageFilesystem?: () => Promise<NodeImageSetImageFilesystem | undefined>
  publisher: Publisher
  clock?: Clock
  logger?: Logger
  intervalMs?: number
  heartbeatMs?: number
  backoffInitialMs?: number
  backoffMaxMs?: number
  /** ImageStatus calls per interval to confirm newly listed names (issue 10 item 8). */
  confirmBudget?: number
  /** Where a CRI-O node's registries.conf, drop-ins and alias cache are (the host's, mounted read-only). */
  registriesConf?: RegistriesConfPaths
  observer?: AgentObserver
}

export interface TickResult {
  /** How long to wait before the next tick. */
  delayMs: number
  runtimeOk: boolean
  /** Every call to the publisher succeeded (or none was needed). */
  publishOk: boolean
  specPublished: boolean
  statusPublished: boolean
}

export interface Agent {
  /** One iteration: read the runtime, publish what changed. Never throws. */
  tick(): Promise<TickResult>
  /** Ticks until stop(); resolves when the loop has ended. */
  run(): Promise<void>
  /** Ends the loop after the current iteration; resolves when it has ended. */
  stop(): Promise<void>
}

function sortedUnique(values: readonly string[]): string[] {
  // Most images have one tag and one digest: no set, no sort for them, every interval.
  if (values.length < 2) return values.slice()
  return [...new Set(values)].sort()
}

/**
 * The runtime's list in one order, whatever order the runtime answered in: images by id,
 * names sorted. Equal sets give equal specs (and JSON, and the digest below), so the applied
 * object is stable and an unchanged node costs no write.
 */
export function canonicalImages(images: readonly RuntimeImage[]): RuntimeImage[] {
  return images
    .map((img) => ({
      id: img.id,
      repoTags: sortedUnique(img.repoTags),
      repoDigests: sortedUnique(img.repoDigests),
      size: img.size,
      pinned: img.pinned,
    }))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

/**
 * Equal as JSON values (plain objects, arrays, primitives; a key set to undefined counts),
 * walked in place: the agent compares its 1,000-image spec with the last one every interval,
 * and node:util's isDeepStrictEqual allocates key lists and a memo set for that (0.5 MiB).
 */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false
    return true
  }
  const x = a as Record<string, unknown>
  const y = b as Record<string, unknown>
  let keys = 0
  for (const k in x) {
    if (!Object.hasOwn(y, k) || !sameJson(x[k], y[k])) return false
    keys++
  }
  for (const k in y) if (Object.hasOwn(y, k)) keys--
  return keys === 0
}

export function specDigest(spec: NodeImageSet['spec']): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex')
}

export function nodeImageSet(
  nodeName: string,
  runtime: RuntimeInfo | undefined,
  images: RuntimeImage[],
  elsewhere?: ImagesElsewhere,
): NodeImageSet {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: NODE_IMAGE_SET_KIND,
    metadata: { name: nodeName },
    spec: {
      nodeName,
      ...(runtime ? { runtime } : {}),
      images,
      // Absent when empty: a node with nothing elsewhere publishes what it always did.
      ...(elsewhere !== undefined && elsewhere.images.length > 0 ? { imagesElsewhere: elsewhere.images } : {}),
      ...(elsewhere !== undefined && elsewhere.omitted > 0 ? { imagesElsewhereOmitted: elsewhere.omitted } : {}),
    },
  }
}

export function createAgent(options: AgentOptions): Agent {
  const nodeName = options.nodeName
  const { cri, publisher } = options
  const clock = options.clock ?? systemClock
  const log = options.logger ?? silentLogger
  const observer = options.observer ?? NO_OBSERVER
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS
  const backoffInitialMs = options.backoffInitialMs ?? DEFAULT_BACKOFF_INITIAL_MS
  const backoffMaxMs = Math.max(options.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS, backoffInitialMs)

  /** Spec last applied successfully. */
  let published: { spec: NodeImageSet['spec'] } | undefined
  /** Last time the runtime's list was seen equal to the published spec: status.observedTime. */
  let confirmedAt: number | undefined
  /** Last status applied successfully: when, and the condition keys it carried. */
  let statusAt: number | undefined
  let statusKey: string | undefined
  /** A spec landed whose status has not yet: retried every tick until it lands. */
  let statusPending = false
  let failures = 0
  /** The last images-elsewhere listing that worked: kept while containerd's API fails. */
  let elsewhere: ImagesElsewhere | undefined
  let elsewhereFailing = false
  let imageFs: NodeImageSetImageFilesystem | undefined
  let imageFsFailing = false
  const conditions = new Map<string, NodeImageSetCondition>()
  // Re-checks of unresolved names ride the heartbeat: a name fixed by a re-tag shows up within it.
  const confirmer = createNameConfirmer((image) => cri.imageStatus(image), {
    budget: options.confirmBudget ?? DEFAULT_CONFIRM_BUDGET,
    recheckMs: heartbeatMs,
  })
  /** Unresolved names already logged, so each is logged once while it stays. */
  let reportedUnresolved = new Set<string>()
  /** Images the last listing had with no name (see settle below). */
  let seenNameless = new Set<string>()
  let warnedUnconfirmed = false
  const registriesConf = options.registriesConf ?? {
    path: DEFAULT_REGISTRIES_CONF,
    dir: DEFAULT_REGISTRIES_CONF_DIR,
    aliasCache: DEFAULT_ALIAS_CACHE,
  }
  let registriesError: string | undefined

  /**
   * CRI-O resolves short names through registries.conf (issue 10 item 2): publish what the
   * webhook needs to resolve like it. Unreadable: published without, and the webhook treats
   * short names on this node as unknown.
   */
  async function withShortNameConfig(runtime: RuntimeInfo): Promise<RuntimeInfo> {
    if (runtime.name.toLowerCase() !== 'cri-o') return runtime
    try {
      const { config, files } = await readShortNameConfig(registriesConf)
      if (registriesError !== undefined) log.info({ files }, 'registries configuration readable again')
      registriesError = undefined
      return {
        ...runtime,
        unqualifiedSearchRegistries: [...config.unqualifiedSearchRegistries],
        shortNameAliases: { ...config.shortNameAliases },
      }
    } catch (err) {
      const message = errorMessage(err)
      if (message !== registriesError) {
        log.warn(
          { err: message },
          'cannot read the registries configuration CRI-O resolves short names with: short names on this node are published as unknown',
        )
      }
      registriesError = message
      return runtime
    }
  }

  /**
   * containerd's CRI adds an image in two steps (pkg/cri/server/events.go updateImage): its
   * ID reference first, its name a moment later, so a listing can catch a new image with no
   * name. Publishing that would be a spec write for a state the runtime leaves within
   * milliseconds, and another once the name is there. An image the published list does not
   * have and that is listed with no name waits one interval; listed nameless again, it is
   * published as it is (an untagged image is a real state). The first list is published whole.
   */
  function settle(listed: RuntimeImage[]): RuntimeImage[] {
    const prev = published
    if (prev === undefined) return listed
    const nameless = listed.filter((img) => img.repoTags.length === 0 && img.repoDigests.length === 0)
    if (nameless.length === 0) {
      seenNameless = new Set()
      return listed
    }
    const known = new Set(prev.spec.images.map((img) => img.id))
    const hold = new Set(nameless.filter((img) => !known.has(img.id) && !seenNameless.has(img.id)).map((img) => img.id))
    seenNameless = new Set(nameless.map((img) => img.id))
    return hold.size === 0 ? listed : listed.filter((img) => !hold.has(img.id))
  }

  function setCondition(type: string, ok: boolean, reason: string, message: string, now: number): void {
    const status = ok ? 'True' : 'False'
    const prev = conditions.get(type)
    const lastTransitionTime = prev && prev.status === status ? prev.lastTransitionTime : new Date(now).toISOString()
    conditions.set(type, { type, status, reason, message, ...(lastTransitionTime ? { lastTransitionTime } : {}) })
  }

  function currentConditions(): NodeImageSetCondition[] {
    const out: NodeImageSetCondition[] = []
    for (const type of [CONDITION_RUNTIME_REACHABLE, CONDITION_PUBLISHED]) {
      const c = conditions.get(type)
      if (c) out.push(c)
    }
    return out
  }

  // Status and reason only: an error message that varies from tick to tick must not turn
  // every tick into a write. New messages travel with the next heartbeat.
  function conditionKey(): string {
    // The image filesystem's percentage too: a new one is a status write, the bytes are not.
    return (
      currentConditions()
        .map((c) => `${c.type}=${c.status}/${c.reason ?? ''}`)
        .join(',') + (imageFs?.usedPercent !== undefined ? `,imageFs=${imageFs.usedPercent}` : '')
    )
  }

  function buildStatus(): NodeImageSetStatus {
    return {
      ...(confirmedAt !== undefined ? { observedTime: new Date(confirmedAt).toISOString() } : {}),
      ...(published !== undefined ? { imageCount: published.spec.images.length } : {}),
      ...(imageFs !== undefined ? { imageFilesystem: imageFs } : {}),
      conditions: currentConditions(),
    }
  }

  function backoffDelay(): number {
    return delayFor({ initialMs: backoffInitialMs, maxMs: backoffMaxMs }, failures)
  }

  async function tick(): Promise<TickResult> {
    let runtimeOk = true
    let publishOk = true
    let specPublished = false
    let statusPublished = false

    // 1. Ask the runtime.
    let current: { spec: NodeImageSet['spec'] } | undefined
    let runtimeError: string | undefined
    try {
      const [version, listed] = await Promise.all([cri.version(), cri.listImages()])
      const runtime = await withShortNameConfig(version)
      // Only names the runtime resolves: what the kubelet's ImageStatus will find.
      const confirmed = await confirmer.confirm(settle(listed), clock.now())
      if (options.containerd !== undefined && runtime.name === 'containerd') {
        try {
          elsewhere = await options.containerd.listImagesElsewhere()
          if (elsewhereFailing) log.info({}, 'listing images outside k8s.io works again')
          elsewhereFailing = false
        } catch (err) {
          // Only a hint for messages: the kubelet's list (above) still goes out.
          if (!elsewhereFailing)
            log.warn(
              { err: errorMessage(err) },
              'cannot list images outside the k8s.io containerd namespace; keeping the last list',
            )
          elsewhereFailing = true
        }
      }
      if (options.imageFilesystem !== undefined) {
        try {
          imageFs = await options.imageFilesystem()
          imageFsFailing = false
        } catch (err) {
          if (!imageFsFailing)
            log.warn(
              { err: errorMessage(err) },
              'cannot read the image filesystem (CRI ImageFsInfo); GC-risk warnings need it',
            )
          imageFsFailing = true
          imageFs = undefined
        }
      }
      const now = clock.now()
      observer.runtimeListed(listed.length)
      observer.nodeFacts?.(
        elsewhere === undefined ? undefined : elsewhere.images.length + elsewhere.omitted,
        imageFs?.usedPercent,
      )
      const unresolved = confirmed.unresolved
      const fresh = unresolved.filter((n) => !reportedUnresolved.has(n))
      if (fresh.length > 0) {
        log.warn(
          { names: fresh.slice(0, 20), count: fresh.length },
          'the runtime lists these image names but does not resolve them (ImageStatus finds nothing; e.g. stored raw by ctr images tag, containerd#8848): not published',
        )
      }
      reportedUnresolved = new Set(unresolved)
      if (!confirmed.enabled && !warnedUnconfirmed) {
        warnedUnconfirmed = true
        log.warn(
          { runtime: runtime.name },
          'the runtime does not implement ImageStatus: publishing its image list unconfirmed',
        )
      }
      const left =
        unresolved.length === 0
          ? ''
          : `; ${unresolved.length} listed name${unresolved.length === 1 ? '' : 's'} the runtime does not resolve left out (${unresolved.slice(0, 3).join(', ')}${unresolved.length > 3 ? ', ...' : ''})`
      if (confirmed.pending > 0) {
        // Publishing part of the names would read as "absent" for the rest: keep the last
        // published list until every name is confirmed.
        setCondition(
          CONDITION_RUNTIME_REACHABLE,
          true,
          'ConfirmingNames',
          `listed ${listed.length} images from ${runtime.name} ${runtime.version} at ${runtime.endpoint}; confirming names with ImageStatus, ${confirmed.pending} left (at most ${options.confirmBudget ?? DEFAULT_CONFIRM_BUDGET} an interval)${left}`,
          now,
        )
        log.info({ pending: confirmed.pending, calls: confirmed.calls }, 'confirming image names with the runtime')
      } else {
        const spec = nodeImageSet(nodeName, runtime, canonicalImages(confirmed.images), elsewhere).spec
        current = { spec }
        setCondition(
          CONDITION_RUNTIME_REACHABLE,
          true,
          'ImagesListed',
          `listed ${listed.length} images from ${runtime.name} ${runtime.version} at ${runtime.endpoint}${left}`,
          now,
        )
      }
    } catch (err) {
      runtimeOk = false
      runtimeError = errorMessage(err)
      observer.runtimeFailed()
      const kept = published
        ? `the published list of ${published.spec.images.length} images is kept` +
          (confirmedAt !== undefined ? ` (last confirmed ${new Date(confirmedAt).toISOString()})` : '')
        : 'no image list has been published yet'
      setCondition(CONDITION_RUNTIME_REACHABLE, false, 'RuntimeError', `${runtimeError}; ${kept}`, clock.now())
      log.warn({ err: runtimeError, failures: failures + 1 }, 'cannot list images from the container runtime')
    }

    // 2. Spec: only from a healthy runtime, so an error can never publish an empty list.
    if (current) {
      // Compared in place, not by digest: the JSON of 1,000 images is a 180 KiB string,
      // which V8 allocates straight into its old generation; only a change is hashed (for the log).
      if (published === undefined || !sameJson(current.spec, published.spec)) {
        try {
          await publisher.apply({ ...nodeImageSet(nodeName, undefined, []), spec: current.spec })
          const first = published === undefined
          published = current
          confirmedAt = clock.now()
          specPublished = true
          statusPending = true
          observer.published('spec', true, confirmedAt)
          setCondition(
            CONDITION_PUBLISHED,
            true,
            'Applied',
            `NodeImageSet spec lists ${current.spec.images.length} images`,
            clock.now(),
          )
          log.info(
            { images: current.spec.images.length, digest: specDigest(current.spec).slice(0, 12), first },
            'published image list',
          )
        } catch (err) {
          publishOk = false
          observer.published('spec', false, clock.now())
          const msg = errorMessage(err)
          setCondition(CONDITION_PUBLISHED, false, 'ApplyFailed', msg, clock.now())
          log.warn({ err: msg, failures: failures + 1 }, 'cannot publish NodeImageSet')
        }
      } else {
        confirmedAt = clock.now()
      }
    }

    // 3. Status: with every spec change, when a condition flips, and as a heartbeat.
    const key = conditionKey()
    const now = clock.now()
    if (statusPending || key !== statusKey || statusAt === undefined || now - statusAt >= heartbeatMs) {
      try {
        await publisher.applyStatus(nodeName, buildStatus())
        statusAt = clock.now()
        statusKey = key
        statusPending = false
        statusPublished = true
        observer.published('status', true, statusAt)
        log.debug({ conditions: key }, 'published status')
      } catch (err) {
        publishOk = false
        observer.published('status', false, clock.now())
        log.warn({ err: errorMessage(err), failures: failures + 1 }, 'cannot publish NodeImageSet status')
      }
    }

    if (runtimeOk && publishOk) {
      if (failures > 0) log.info({ after: failures }, 'recovered')
      failures = 0
      return { delayMs: intervalMs, runtimeOk, publishOk, specPublished, statusPublished }
    }
    failures++
    // The runtime is a local socket: while only it fails, ask again every interval at the
    // latest, so its recovery is published within one interval. The apiserver, shared by
    // every node, gets the growing backoff.
    const delayMs = publishOk ? Math.min(backoffDelay(), intervalMs) : backoffDelay()
    return { delayMs, runtimeOk, publishOk, specPublished, statusPublished }
  }

  const abort = new AbortController()
  let running: Promise<void> | undefined

  async function loop(): Promise<void> {
    while (!abort.signal.aborted) {
      const { delayMs } = await tick()
      if (abort.signal.aborted) break
      await clock.sleep(delayMs, abort.signal)
    }
  }

  return {
    tick,
    run() {
      running ??= loop()
      return running
    },
    async stop() {
      abort.abort()
      await running
    },
  }
}
