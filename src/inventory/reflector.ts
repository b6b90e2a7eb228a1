import type { ListerWatcher, ListPage, WatchFrame } from '../kube/lister-watcher.js'
import { ApiStatusError, statusOf } from '../kube/status.js'
import type { Logger } from '../util/logger.js'
import { errorMessage, isObject } from '../util/guards.js'
import { timerClock, type Clock } from '../util/clock.js'
import { backoffDelay } from '../util/backoff.js'
import { ResourceVersionStore } from './rv-store.js'

/** Retries and deadlines wait on timers that do not keep the webhook's process alive on their own. */
const BACKGROUND_CLOCK = timerClock({ unref: true })

// Lists and watches one collection the way client-go's reflector does, but keeps no cache:
// every object is handed to the source as soon as its page or event is parsed, and all that
// stays behind is `name -> resourceVersion` (rv-store.ts). An informer's cache would hold
// every NodeImageSet a second time beside the index (at 5,000 nodes, gigabytes of objects).
//
// - The list is paged (`limit` + `continue`) and read page by page, so no response holds the
//   whole collection; a continue token that expires (410) restarts the list from the start.
// - A relist upserts what changed as it streams in and, once complete, removes exactly the
//   names that were known before and are gone now (the store's Replace): the sink is never
//   emptied meanwhile.
// - The watch starts from the list's resourceVersion, follows bookmarks, asks the apiserver
//   to end it (timeoutSeconds) and aborts it itself a little later, so a half-open
//   connection cannot freeze the inventory. A normal end re-watches from the last
//   resourceVersion; 410 (HTTP or ERROR event) relists; anything else backs off first.
// This is the protocol only: requests, framing and Status errors are the ListerWatcher's
// (src/kube/lister-watcher.ts), time and sleeps the Clock's, jitter the injected random's.

/** One collection and what to do with its objects. */
export interface ReflectorSource {
  kind: string
  /** An object was listed or changed (never called twice for one resourceVersion). */
  upsert(obj: Record<string, unknown>, name: string): void
  /** The object is gone. */
  remove(name: string): void
  /** An object nothing can be done with (no name): the reason is for the log. */
  malformed(obj: Record<string, unknown>, reason: string): void
  /** A list or watch failed and will be retried after a backoff (a source may change its path). */
  failed?(err: unknown): void
}

export interface ReflectorOptions {
  /** The collection: the API server's (httpListerWatcher in src/kube), or a test's. */
  listerWatcher: ListerWatcher
  log: Logger
  retryInitialMs: number
  retryMaxMs: number
  /** Per page: a list request that takes longer fails and is retried. */
  listTimeoutMs: number
  /** Objects per list page (`limit`). */
  pageSize: number
  /**
   * Asked of the apiserver for each watch. Absent: drawn for each watch from 300-600 s with
   * `random`, as client-go's reflector does (its minWatchTimeout, 5 minutes, times [1, 2)),
   * so that the watches of many replicas do not all end at once.
   */
  watchTimeoutSeconds?: number
  /** Called once, after the first complete list. */
  onListed(): void
  /**
   * Time, the sleeps between retries and the list and watch deadlines; a timer clock that
   * keeps no process alive by default.
   */
  clock?: Clock
  /** The jitter's randomness, in [0, 1); Math.random by default. */
  random?: () => number
}

// client-go reports a watch that ends this quickly without events as an error, so that a
// server or proxy that keeps closing the stream is retried with backoff, not in a loop.
const SHORT_WATCH_MS = 1000
// client-go's minWatchTimeout: each watch asks for this times [1, 2) unless told a timeout.
const MIN_WATCH_TIMEOUT_SECONDS = 300
// Slack between the timeout we ask the apiserver for and the moment we abort ourselves.
const WATCH_ABORT_SLACK_SECONDS = 30
// How long close() waits for a loop stuck outside our control (an exec credential plugin).
const CLOSE_WAIT_MS = 2000
// A continue token expires when the list takes longer than etcd keeps its revision
// (5 minutes by default). Restarting at once is right after a slow page; again and again
// means the list cannot finish in time, and the backoff should slow us down.
const MAX_LIST_RESTARTS = 2

type WatchEnd = 'ended' | 'expired'
type Stop = { expired: true } | { error: Error }

function isExpired(err: unknown): boolean {
  return err instanceof ApiStatusError && err.code === 410
}

function nameOf(obj: Record<string, unknown>): string | undefined {
  const metadata = obj.metadata
  const name = isObject(metadata) ? metadata.name : undefined
  return typeof name === 'string' && name !== '' ? name : undefined
}

function resourceVersionOf(obj: Record<string, unknown>): string {
  const metadata = obj.metadata
  const rv = isObject(metadata) ? metadata.resourceVersion : undefined
  return typeof rv === 'string' ? rv : ''
}

/**
 * A signal that aborts with `parent`, or with `onTimeout()` once `clock` has slept `ms`.
 * dispose() cancels the sleep.
 */
function deadline(
  clock: Clock,
  parent: AbortSignal,
  ms: number,
  onTimeout: () => Error,
): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController()
  const timer = new AbortController()
  const follow = (): void => controller.abort(parent.reason)
  if (parent.aborted) follow()
  else parent.addEventListener('abort', follow, { once: true })
  clock.sleep(ms, timer.signal).then(
    () => {
      if (!timer.signal.aborted) controller.abort(onTimeout())
    },
    () => undefined,
  )
  return {
    signal: controller.signal,
    dispose: () => {
      timer.abort()
      parent.removeEventListener('abort', follow)
    },
  }
}

/** List and watch of one collection, restarted after failures until closed. */
export class Reflector {
  /** What we know exists: name -> resourceVersion, and nothing else of the objects. */
  private readonly known = new ResourceVersionStore()
  private readonly abort = new AbortController()
  /** Where the next watch starts; '' means a list is needed first. */
  private resourceVersion = ''
  private closed = false
  private failures = 0
  private expiredInARow = 0
  private listedOnce = false
  private running: Promise<void> | undefined

  private readonly lw: ListerWatcher
  private readonly clock: Clock
  private readonly random: () => number

  constructor(
    private readonly source: ReflectorSource,
    private readonly options: ReflectorOptions,
  ) {
    this.lw = options.listerWatcher
    this.clock = options.clock ?? BACKGROUND_CLOCK
    this.random = options.random ?? Math.random
  }

  /** Objects known right now (for tests and metrics). */
  get size(): number {
    return this.known.size
  }

  start(): void {
    if (this.closed || this.running !== undefined) return
    this.running = this.run().catch((err: unknown) => {
      // Only a throwing logger or onListed gets here; the loop itself never gives up.
      this.options.log.error({ kind: this.source.kind, err: errorMessage(err) }, 'inventory reflector stopped')
    })
  }

  async close(): Promise<void> {
    this.closed = true
    this.abort.abort()
    if (this.running === undefined) return
    const waiting = new AbortController()
    await Promise.race([this.running, this.clock.sleep(CLOSE_WAIT_MS, waiting.signal)])
    waiting.abort()
  }

  private async run(): Promise<void> {
    const { kind } = this.source
    const { log } = this.options
    while (!this.closed) {
      try {
        if (this.resourceVersion === '') {
          await this.list()
          this.failures = 0
          if (!this.listedOnce && !this.closed) {
            this.listedOnce = true
            this.options.onListed()
          }
        }
        if (this.closed) break
        if ((await this.watch()) === 'expired' && !this.closed) {
          log.info({ kind, resourceVersion: this.resourceVersion }, 'inventory watch history expired (410); relisting')
          this.resourceVersion = ''
          // A watch that expires right after a relist would otherwise relist in a loop.
          if (this.expiredInARow++ > 0) await this.backoff(new Error('the watch expired again right after a relist'))
        }
      } catch (err) {
        if (this.closed) break
        await this.backoff(err)
      }
    }
  }

  private async backoff(err: unknown): Promise<void> {
    const { retryInitialMs, retryMaxMs } = this.options
    this.failures++
    const wait = backoffDelay(
      { initialMs: retryInitialMs, maxMs: retryMaxMs, jitter: true },
      this.failures,
      this.random,
    )
    this.source.failed?.(err)
    this.options.log.warn(
      { kind: this.source.kind, err: errorMessage(err), attempt: this.failures, retryInMs: wait },
      'inventory list/watch failed; keeping the data we hold and retrying',
    )
    await this.clock.sleep(wait, this.abort.signal)
  }

  // ---- list ----

  private async list(): Promise<void> {
    const { kind } = this.source
    let seen = new Set<string>()
    let token = ''
    let pages = 0
    let restarts = 0
    let listRv: string
    for (;;) {
      let page: ListPage
      try {
        page = await this.fetchPage(token)
      } catch (err) {
        if (token === '' || !isExpired(err) || restarts >= MAX_LIST_RESTARTS || this.closed) throw err
        restarts++
        this.options.log.info(
          { kind, pages, restart: restarts, err: errorMessage(err) },
          'inventory list continue token expired; listing again from the start',
        )
        // What the first attempt saw may be gone by now: only the new list decides removals.
        seen = new Set()
        token = ''
        pages = 0
        continue
      }
      pages++
      listRv = page.resourceVersion
      token = page.continue
      this.ingest(page.items, seen)
      if (this.closed) return
      if (token === '') break
    }
    const gone = this.known.replace(seen)
    for (const name of gone) this.guarded('remove', name, () => this.source.remove(name))
    const removed = gone.length
    this.resourceVersion = listRv
    this.options.log.debug({ kind, items: seen.size, pages, removed, resourceVersion: listRv }, 'inventory listed')
  }

  private async fetchPage(token: string): Promise<ListPage> {
    const { listTimeoutMs, pageSize } = this.options
    const limit = deadline(
      this.clock,
      this.abort.signal,
      listTimeoutMs,
      () => new Error(`list request timed out after ${listTimeoutMs} ms`),
    )
    let page: ListPage
    try {
      page = await this.lw.list({ limit: pageSize, continue: token, signal: limit.signal })
    } catch (err) {
      throw limit.signal.aborted && !this.closed ? limit.signal.reason : err
    } finally {
      limit.dispose()
    }
    // The watch starts from the list's resourceVersion: a list without one is of no use.
    if (page.resourceVersion === '') throw new Error('list response without metadata.resourceVersion')
    return page
  }

  /** Hands a page's objects over one at a time, letting go of each once handled. */
  private ingest(items: unknown[], seen: Set<string>): void {
    for (let i = 0; i < items.length; i++) {
      const obj = items[i]
      items[i] = undefined
      if (this.closed) return
      if (!isObject(obj)) {
        this.source.malformed({}, 'list item is not an object')
        continue
      }
      const name = nameOf(obj)
      if (name === undefined) {
        this.source.malformed(obj, 'object without metadata.name')
        continue
      }
      seen.add(name)
      this.upsert(obj, name)
    }
  }

  private upsert(obj: Record<string, unknown>, name: string): void {
    const rv = resourceVersionOf(obj)
    // A relist brings back every object; most have not changed since we last saw them.
    if (!this.known.update(name, rv)) return
    this.guarded('upsert', name, () => this.source.upsert(obj, name))
  }

  private guarded(action: string, name: string, run: () => void): void {
    if (this.closed) return
    try {
      run()
    } catch (err) {
      // One object's failure must not cost the stream or the rest of the page.
      this.options.log.error({ kind: this.source.kind, name, err: errorMessage(err) }, `inventory ${action} failed`)
    }
  }

  // ---- watch ----

  private async watch(): Promise<WatchEnd> {
    const timeoutSeconds =
      this.options.watchTimeoutSeconds ?? Math.floor(MIN_WATCH_TIMEOUT_SECONDS * (1 + this.random()))
    const limit = deadline(
      this.clock,
      this.abort.signal,
      (timeoutSeconds + WATCH_ABORT_SLACK_SECONDS) * 1000,
      () =>
        new Error(
          `the watch outlived its ${timeoutSeconds} s timeout by ${WATCH_ABORT_SLACK_SECONDS} s; the connection is likely half-open`,
        ),
    )
    const startedAt = this.clock.now()
    try {
      let frames: AsyncIterable<WatchFrame>
      try {
        frames = await this.lw.watch({ resourceVersion: this.resourceVersion, timeoutSeconds, signal: limit.signal })
      } catch (err) {
        if (isExpired(err)) return 'expired'
        throw err
      }
      return await this.stream(frames, startedAt)
    } catch (err) {
      // The deadline aborts with the parent's AbortError or with onTimeout()'s Error.
      throw limit.signal.aborted && !this.closed ? limit.signal.reason : err
    } finally {
      limit.dispose()
    }
  }

  /** Handles a watch's events until it ends, is cut, or must stop. */
  private async stream(frames: AsyncIterable<WatchFrame>, startedAt: number): Promise<WatchEnd> {
    let events = 0
    let progress = false
    let stop: Stop | undefined
    try {
      for await (const frame of frames) {
        const outcome = this.event(frame)
        if (outcome === undefined) continue
        if (outcome === 'event' || outcome === 'progress') {
          events++
          if (outcome === 'progress') progress = true
          continue
        }
        stop = outcome
        break
      }
    } finally {
      if (progress || this.clock.now() - startedAt >= SHORT_WATCH_MS) {
        // It ran: whatever ends it now is a new failure, not one more in a row.
        this.failures = 0
        this.expiredInARow = 0
      }
    }
    if (stop !== undefined) {
      if ('expired' in stop) return 'expired'
      throw stop.error
    }
    if (this.closed) return 'ended'
    if (events === 0 && this.clock.now() - startedAt < SHORT_WATCH_MS)
      throw new Error('very short watch: the stream ended within a second without events')
    return 'ended'
  }

  /**
   * Handles one event. `progress` is an event about our objects (or a bookmark), `event` one
   * that was ignored, a Stop ends the stream; undefined for a line that is not an event.
   */
  private event(frame: WatchFrame): 'event' | 'progress' | Stop | undefined {
    const { kind } = this.source
    const { log } = this.options
    if (!frame.ok) {
      log.warn({ kind, reason: 'not JSON', line: frame.line.slice(0, 200) }, 'inventory watch event ignored')
      return undefined
    }
    const { type, object: obj } = frame
    if (!isObject(obj)) {
      log.warn({ kind, phase: type, reason: 'event without an object' }, 'inventory watch event ignored')
      return 'event'
    }
    if (type === 'ERROR') {
      const { code, reason, message = '' } = statusOf(obj, 0)
      if (code === 410) return { expired: true }
      log.warn({ kind, code, reason, message }, 'inventory watch stream error')
      return { error: new ApiStatusError(code, reason, `watch stream error ${code} ${reason}: ${message}`) }
    }
    if (!isObject(obj.metadata)) {
      log.warn({ kind, phase: type, reason: 'object without metadata' }, 'inventory watch event ignored')
      return 'event'
    }
    const rv = resourceVersionOf(obj)
    if (rv !== '') this.resourceVersion = rv
    if (type === 'BOOKMARK') return 'progress'
    if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') {
      log.warn({ kind, phase: type, reason: 'unknown event type' }, 'inventory watch event ignored')
      return 'progress'
    }
    const name = nameOf(obj)
    if (name === undefined) {
      this.source.malformed(obj, 'object without metadata.name')
      return 'progress'
    }
    if (type === 'DELETED') {
      this.known.delete(name)
      this.guarded('remove', name, () => this.source.remove(name))
    } else {
      this.upsert(obj, name)
    }
    return 'progress'
  }
}
