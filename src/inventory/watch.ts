import {
  CoreV1Api,
  CustomObjectsApi,
  ListWatch,
  Watch,
  setHeaderMiddleware,
  type ConfigurationOptions,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObservableMiddleware,
} from '@kubernetes/client-node'
import { namespaceMode, toNodeFacts, toNodeImages } from './convert.js'
import { GROUP, MODE_LABEL, NODE_IMAGE_SET_PLURAL, VERSION, type InventorySink } from './types.js'

// Keeps an InventorySink in step with the cluster's Nodes, NodeImageSets and Namespaces.
//
// client-node 1.4's ListWatch does the list+watch bookkeeping, and on a relist it reconciles
// against what it held (delete callbacks for missing objects, update callbacks for changed
// ones), so the sink is never emptied. What it leaves to us, and this file adds:
// - after any error that is not a 410 (failed list, cut stream, non-200 watch) it fires
//   'error' and stops for good: we restart it with backoff;
// - a watch has no timeout: we ask the apiserver to end it (timeoutSeconds) and abort it
//   ourselves a little later, so a half-open connection cannot freeze the inventory;
// - stop() during a list still opens a watch afterwards: the Watch below refuses once closed;
// - a stream that ends at once, or with a non-410 ERROR event, would be re-watched in a tight
//   loop: it is reported as an error so the backoff applies (client-go does the same).

export type InventoryKind = 'Node' | 'NodeImageSet' | 'Namespace'

/** The subset of a pino logger this module uses. */
export interface InventoryWatchLogger {
  debug(obj: object, msg: string): void
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export interface InventoryWatchMetrics {
  /** An object was ignored; `reason` is a fixed word (`malformed`), the details go to the log. */
  skipped(kind: InventoryKind, reason: string): void
}

export interface InventoryWatchOptions {
  kubeConfig: KubeConfig
  sink: InventorySink
  log: InventoryWatchLogger
  metrics?: InventoryWatchMetrics
  /** Called once, when the first complete list of all three resources is in the sink. */
  onSynced?: () => void
  /** Delay before restarting after a failure: doubles from initialMs up to maxMs, with jitter. */
  retry?: { initialMs?: number; maxMs?: number }
  /** A list request that takes longer than this fails and is retried. */
  listTimeoutMs?: number
  /** Ask the apiserver to end each watch after this long; default random 300-600 s, as client-go. */
  watchTimeoutSeconds?: number
}

export interface InventoryWatch {
  /** Resolves after the first complete list of all three resources; rejects if closed before. */
  readonly synced: Promise<void>
  isSynced(): boolean
  close(): Promise<void>
}

const DEFAULT_RETRY_INITIAL_MS = 500
const DEFAULT_RETRY_MAX_MS = 30_000
const DEFAULT_LIST_TIMEOUT_MS = 60_000
// client-go reports a watch that ends this quickly without events as an error, so that a
// server or proxy that keeps closing the stream is retried with backoff, not in a loop.
const SHORT_WATCH_MS = 1000
// Slack between the timeout we ask the apiserver for and the moment we abort ourselves.
const WATCH_ABORT_SLACK_SECONDS = 30
// How long close() waits for in-flight connects to settle so no socket outlives it.
const CLOSE_WAIT_MS = 2000

interface ResourceHandlers {
  kind: InventoryKind
  path: string
  list(options: ConfigurationOptions): Promise<KubernetesListObject<KubernetesObject>>
  upsert(obj: KubernetesObject): void
  remove(obj: KubernetesObject): void
}

interface ReflectorContext {
  kubeConfig: KubeConfig
  log: InventoryWatchLogger
  retryInitialMs: number
  retryMaxMs: number
  listTimeoutMs: number
  watchTimeoutSeconds: () => number
  onListed: (kind: InventoryKind) => void
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}

function abortedController(): AbortController {
  const controller = new AbortController()
  controller.abort()
  return controller
}

/** Request options that make a generated-API call honour `signal`. */
function withSignal(signal: AbortSignal): ConfigurationOptions {
  // The generated client takes its Observable-style middleware; reuse the library's own
  // header middleware for the plumbing (Accept: application/json is what it sends anyway).
  const accept = setHeaderMiddleware('Accept', 'application/json')
  const middleware: ObservableMiddleware = {
    pre: (context) => {
      context.setSignal(signal)
      return accept.pre(context)
    },
    post: (context) => accept.post(context),
  }
  return { middleware: [middleware], middlewareMergeStrategy: 'append' }
}

interface WatchHooks {
  /** The informer holds a complete list (it only watches after one). */
  watching(): void
  /** A watch stream is open. */
  connected(): void
  /** The stream carried an ERROR event. */
  streamError(status: { code?: unknown; reason?: unknown; message?: unknown }): void
  /** An event was dropped or its handling failed: logged, never thrown into the stream. */
  eventFailed(phase: string, detail: string): void
  timeoutSeconds(): number
}

/** client-node's Watch, with a timeout, error hardening, and a close() that really closes. */
class GuardedWatch extends Watch {
  private closed = false
  private readonly open = new Set<AbortController>()
  private readonly connecting = new Set<Promise<unknown>>()

  constructor(
    config: KubeConfig,
    private readonly hooks: WatchHooks,
  ) {
    super(config)
  }

  async close(): Promise<void> {
    this.closed = true
    for (const controller of this.open) controller.abort()
    this.open.clear()
    if (this.connecting.size > 0) {
      await Promise.race([Promise.allSettled([...this.connecting]), delay(CLOSE_WAIT_MS)])
    }
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    done: (err: any) => void,
  ): Promise<AbortController> {
    if (this.closed) return abortedController()
    this.hooks.watching()
    const timeoutSeconds = this.hooks.timeoutSeconds()
    const startedAt = Date.now()
    let events = 0
    let streamError: Error | undefined
    let finished = false
    let controller: AbortController | undefined
    let guard: NodeJS.Timeout | undefined
    const finish = (err: unknown): void => {
      if (finished) return
      finished = true
      if (guard !== undefined) clearTimeout(guard)
      if (controller !== undefined) this.open.delete(controller)
      if (err === null || err === undefined) {
        if (streamError !== undefined) err = streamError
        else if (events === 0 && Date.now() - startedAt < SHORT_WATCH_MS && !this.closed) {
          err = new Error('very short watch: the stream ended within a second without events')
        }
      }
      done(err ?? null)
    }
    const onEvent = (phase: string, obj: any, raw?: any): void => {
      events++
      // ListWatch's handler is async and reads obj.metadata / obj.code unguarded: an event
      // without an object would become an unhandled rejection, so it never gets one.
      if (typeof obj !== 'object' || obj === null) {
        this.hooks.eventFailed(phase, 'event without an object')
        return
      }
      if (phase === 'ERROR') {
        const status = obj as { code?: unknown; reason?: unknown; message?: unknown }
        this.hooks.streamError(status)
        if (status.code !== 410) {
          streamError = new Error(`watch stream error ${String(status.code)} ${String(status.reason)}: ${String(status.message)}`)
        }
      } else if (phase !== 'BOOKMARK' && (typeof obj.metadata !== 'object' || obj.metadata === null)) {
        this.hooks.eventFailed(phase, 'object without metadata')
        return
      }
      Promise.resolve(callback(phase, obj, raw)).catch((err: unknown) => this.hooks.eventFailed(phase, errorMessage(err)))
    }
    const params = { ...queryParams, allowWatchBookmarks: true, timeoutSeconds }
    const pending = super.watch(path, params, onEvent, finish)
    this.connecting.add(pending)
    try {
      controller = await pending
    } catch (err) {
      // Only reachable before the request is sent (e.g. credentials could not be loaded).
      finish(err)
      return abortedController()
    } finally {
      this.connecting.delete(pending)
    }
    if (finished) return controller
    if (this.closed) {
      controller.abort()
      return controller
    }
    this.open.add(controller)
    this.hooks.connected()
    const live = controller
    guard = setTimeout(() => live.abort(), (timeoutSeconds + WATCH_ABORT_SLACK_SECONDS) * 1000)
    guard.unref()
    return controller
  }
}

/** One resource: a ListWatch that is restarted after failures until closed. */
class Reflector {
  private readonly informer: ListWatch<KubernetesObject>
  private readonly watch: GuardedWatch
  private readonly abort = new AbortController()
  private readonly lists = new Set<Promise<unknown>>()
  private closed = false
  private failures = 0
  private retryTimer: NodeJS.Timeout | undefined
  private listedOnce = false

  constructor(
    private readonly handlers: ResourceHandlers,
    private readonly ctx: ReflectorContext,
  ) {
    const { kind } = handlers
    this.watch = new GuardedWatch(ctx.kubeConfig, {
      watching: () => {
        if (this.listedOnce) return
        this.listedOnce = true
        ctx.onListed(kind)
      },
      connected: () => {
        this.failures = 0
      },
      streamError: (status) => {
        if (status.code === 410) ctx.log.info({ kind }, 'inventory watch history expired (410); relisting')
        else ctx.log.warn({ kind, code: status.code, reason: status.reason, message: status.message }, 'inventory watch stream error')
      },
      eventFailed: (phase, detail) => ctx.log.warn({ kind, phase, reason: detail }, 'inventory watch event ignored'),
      timeoutSeconds: ctx.watchTimeoutSeconds,
    })
    this.informer = new ListWatch<KubernetesObject>(handlers.path, this.watch, () => this.list(), false)
    this.informer.on('add', (obj) => this.guard('upsert', obj))
    this.informer.on('update', (obj) => this.guard('upsert', obj))
    this.informer.on('delete', (obj) => this.guard('remove', obj))
    this.informer.on('error', (err) => this.failed(err))
  }

  start(): void {
    if (this.closed) return
    this.informer.start().catch((err: unknown) => this.failed(err))
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    this.abort.abort()
    await this.informer.stop()
    await this.watch.close()
    if (this.lists.size > 0) await Promise.allSettled([...this.lists])
  }

  private async list(): Promise<KubernetesListObject<KubernetesObject>> {
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.ctx.listTimeoutMs)])
    const pending = this.handlers.list(withSignal(signal))
    this.lists.add(pending)
    try {
      const list = await pending
      this.failures = 0
      this.ctx.log.debug({ kind: this.handlers.kind, items: list.items.length, resourceVersion: list.metadata?.resourceVersion }, 'inventory listed')
      return list
    } finally {
      this.lists.delete(pending)
    }
  }

  private guard(action: 'upsert' | 'remove', obj: KubernetesObject): void {
    if (this.closed) return
    try {
      this.handlers[action](obj)
    } catch (err) {
      // A throw here would unwind into client-node's stream handling; never let it.
      this.ctx.log.error({ kind: this.handlers.kind, name: obj.metadata?.name, err: errorMessage(err) }, `inventory ${action} failed`)
    }
  }

  private failed(err: unknown): void {
    if (this.closed || this.retryTimer !== undefined) return
    const base = Math.min(this.ctx.retryMaxMs, this.ctx.retryInitialMs * 2 ** Math.min(this.failures, 30))
    const wait = Math.round(base / 2 + (Math.random() * base) / 2)
    this.failures++
    this.ctx.log.warn(
      { kind: this.handlers.kind, err: errorMessage(err), attempt: this.failures, retryInMs: wait },
      'inventory list/watch failed; keeping the data we hold and retrying',
    )
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined
      this.start()
    }, wait)
  }
}

function nameOf(obj: KubernetesObject): string | undefined {
  const name = obj.metadata?.name
  return typeof name === 'string' && name !== '' ? name : undefined
}

export function startInventoryWatch(options: InventoryWatchOptions): InventoryWatch {
  const { kubeConfig, sink, log, metrics } = options
  const core = kubeConfig.makeApiClient(CoreV1Api)
  const custom = kubeConfig.makeApiClient(CustomObjectsApi)

  const skip = (kind: InventoryKind, obj: KubernetesObject, error: string): void => {
    log.warn(
      { kind, name: obj.metadata?.name, resourceVersion: obj.metadata?.resourceVersion, reason: error },
      'inventory object skipped; keeping the last good data for it',
    )
    metrics?.skipped(kind, 'malformed')
  }
  const withName = (kind: InventoryKind, obj: KubernetesObject, then: (name: string) => void): void => {
    const name = nameOf(obj)
    if (name === undefined) skip(kind, obj, 'object without metadata.name')
    else then(name)
  }

  const handlers: ResourceHandlers[] = [
    {
      kind: 'Node',
      path: '/api/v1/nodes',
      list: (o) => core.listNode({}, o),
      upsert: (obj) => {
        const facts = toNodeFacts(obj)
        if (facts.ok) sink.upsertNode(facts.value)
        else skip('Node', obj, facts.error)
      },
      remove: (obj) => withName('Node', obj, (name) => sink.removeNode(name)),
    },
    {
      kind: 'NodeImageSet',
      path: `/apis/${GROUP}/${VERSION}/${NODE_IMAGE_SET_PLURAL}`,
      list: (o) =>
        custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: NODE_IMAGE_SET_PLURAL }, o) as Promise<
          KubernetesListObject<KubernetesObject>
        >,
      upsert: (obj) => {
        const images = toNodeImages(obj)
        if (images.ok) sink.upsertImages(images.value)
        else skip('NodeImageSet', obj, images.error)
      },
      // Named after its node (toNodeImages refuses anything else), so the name is the node.
      remove: (obj) => withName('NodeImageSet', obj, (name) => sink.removeImages(name)),
    },
    {
      kind: 'Namespace',
      path: '/api/v1/namespaces',
      list: (o) => core.listNamespace({}, o),
      upsert: (obj) =>
        withName('Namespace', obj, (name) => {
          const mode = namespaceMode(obj)
          const label = obj.metadata?.labels?.[MODE_LABEL]
          if (mode === undefined && label !== undefined) {
            log.warn({ namespace: name, label: MODE_LABEL, value: label }, 'unknown mode label value; the global mode applies')
          }
          sink.setNamespaceMode(name, mode)
        }),
      remove: (obj) => withName('Namespace', obj, (name) => sink.setNamespaceMode(name, undefined)),
    },
  ]

  let synced = false
  let closed = false
  let resolveSynced: () => void = () => undefined
  let rejectSynced: (err: Error) => void = () => undefined
  const syncedPromise = new Promise<void>((resolve, reject) => {
    resolveSynced = resolve
    rejectSynced = reject
  })
  // Nobody has to await it; closing before the first sync must not be an unhandled rejection.
  syncedPromise.catch(() => undefined)

  const listed = new Set<InventoryKind>()
  const onListed = (kind: InventoryKind): void => {
    listed.add(kind)
    if (synced || closed || listed.size < handlers.length) return
    synced = true
    log.info({ kinds: [...listed] }, 'inventory watch synced')
    resolveSynced()
    try {
      options.onSynced?.()
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'onSynced callback failed')
    }
  }

  const fixedTimeout = options.watchTimeoutSeconds
  const ctx: ReflectorContext = {
    kubeConfig,
    log,
    retryInitialMs: options.retry?.initialMs ?? DEFAULT_RETRY_INITIAL_MS,
    retryMaxMs: options.retry?.maxMs ?? DEFAULT_RETRY_MAX_MS,
    listTimeoutMs: options.listTimeoutMs ?? DEFAULT_LIST_TIMEOUT_MS,
    watchTimeoutSeconds: () => fixedTimeout ?? Math.floor(300 + Math.random() * 300),
    onListed,
  }
  const reflectors = handlers.map((h) => new Reflector(h, ctx))
  for (const r of reflectors) r.start()

  let closing: Promise<void> | undefined
  return {
    synced: syncedPromise,
    isSynced: () => synced,
    close: () => {
      closing ??= (async () => {
        closed = true
        if (!synced) rejectSynced(new Error('inventory watch closed before the first sync'))
        await Promise.all(reflectors.map((r) => r.close()))
      })()
      return closing
    },
  }
}
