import type { KubeHttp } from '../kube/http.js'
import {
  namespaceMode,
  namespacePullableRegistries,
  namespaceSteer,
  toNodeFacts,
  toNodeImages,
  type SkippedField,
} from './convert.js'
import { httpListerWatcher } from '../kube/lister-watcher.js'
import { ApiStatusError } from '../kube/status.js'
import { Reflector, type ReflectorOptions, type ReflectorSource } from './reflector.js'
import { RUNTIME_CLASS_GROUP, RUNTIME_CLASS_VERSIONS, toRuntimeClass } from './runtime-class.js'
import { GROUP, MODE_LABEL, NODE_IMAGE_SET_PLURAL, STEER_LABEL, VERSION, type InventorySink } from '../api/types.js'
import { PULLABLE_REGISTRIES_ANNOTATION } from '../api/registries.js'
import type { Logger } from '../util/logger.js'
import { errorMessage } from '../util/guards.js'

// Keeps an InventorySink in step with the cluster's Nodes, NodeImageSets, Namespaces and
// RuntimeClasses:
// one cacheless reflector per kind (reflector.ts), over the API server's collection
// (httpListerWatcher), feeds the sink object by object, so the index behind the sink is the
// only copy of the inventory this process holds.

export type InventoryKind = 'Node' | 'NodeImageSet' | 'Namespace' | 'RuntimeClass'

/** A reflector's source with where it lives: a collection path and a page size. */
type Source = ReflectorSource & { kind: InventoryKind; path: string; pageSize: number }

/** The subset of a pino logger this module uses. */

export interface InventoryWatchMetrics {
  /** An object was ignored; `reason` is a fixed word (`malformed`), the details go to the log. */
  skipped(kind: InventoryKind, reason: string): void
  /**
   * A field of an object that was otherwise used could not be understood and was left out;
   * `field` is a fixed path (`status.images.names`), the details go to the debug log.
   */
  fieldSkipped(kind: InventoryKind, field: string): void
}

export interface InventoryWatchOptions {
  /** The API server (src/kube: in-cluster or a kubeconfig). */
  http: KubeHttp
  sink: InventorySink
  log: Logger
  metrics?: InventoryWatchMetrics
  /** Called once, when the first complete list of all three resources is in the sink. */
  onSynced?: () => void
  /** Delay before restarting after a failure: doubles from initialMs up to maxMs, with jitter. */
  retry?: { initialMs?: number; maxMs?: number }
  /** A list request (one page) that takes longer than this fails and is retried. */
  listTimeoutMs?: number
  /** Ask the apiserver to end each watch after this long; default random 300-600 s, as client-go. */
  watchTimeoutSeconds?: number
  /** Objects per list page, for every kind; default 500 (client-go's), 50 for NodeImageSets. */
  pageSize?: number
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
const DEFAULT_PAGE_SIZE = 500
// A NodeImageSet of ~1,000 images is ~310 KB of JSON: 500 of them would be one 155 MB
// response and several times that in parsed objects at once. 50 keeps a page near 15 MB.
const DEFAULT_IMAGE_SET_PAGE_SIZE = 50

export function startInventoryWatch(options: InventoryWatchOptions): InventoryWatch {
  const { http, sink, log, metrics } = options

  const skip = (kind: InventoryKind, obj: Record<string, unknown>, error: string): void => {
    const metadata = (obj as { metadata?: { name?: unknown; resourceVersion?: unknown } }).metadata
    log.warn(
      { kind, name: metadata?.name, resourceVersion: metadata?.resourceVersion, reason: error },
      'inventory object skipped; keeping the last good data for it',
    )
    metrics?.skipped(kind, 'malformed')
  }

  const partly = (kind: InventoryKind, obj: Record<string, unknown>, skipped: SkippedField[]): void => {
    const metadata = (obj as { metadata?: { name?: unknown; resourceVersion?: unknown } }).metadata
    log.debug(
      { kind, name: metadata?.name, resourceVersion: metadata?.resourceVersion, skipped: skipped.map((s) => s.reason) },
      'inventory object used without the fields that could not be read',
    )
    for (const s of skipped) metrics?.fieldSkipped(kind, s.field)
  }

  const sources: Source[] = [
    {
      kind: 'Node',
      path: '/api/v1/nodes',
      pageSize: options.pageSize ?? DEFAULT_PAGE_SIZE,
      upsert: (obj) => {
        const facts = toNodeFacts(obj)
        if (!facts.ok) return skip('Node', obj, facts.error)
        sink.upsertNode(facts.value)
        if (facts.skipped.length > 0) partly('Node', obj, facts.skipped)
      },
      remove: (name) => sink.removeNode(name),
      malformed: (obj, reason) => skip('Node', obj, reason),
    },
    {
      kind: 'NodeImageSet',
      path: `/apis/${GROUP}/${VERSION}/${NODE_IMAGE_SET_PLURAL}`,
      pageSize: options.pageSize ?? DEFAULT_IMAGE_SET_PAGE_SIZE,
      upsert: (obj) => {
        const images = toNodeImages(obj)
        if (images.ok) sink.upsertImages(images.value)
        else skip('NodeImageSet', obj, images.error)
      },
      // Named after its node (toNodeImages refuses anything else), so the name is the node.
      remove: (name) => sink.removeImages(name),
      malformed: (obj, reason) => skip('NodeImageSet', obj, reason),
    },
    {
      kind: 'Namespace',
      path: '/api/v1/namespaces',
      pageSize: options.pageSize ?? DEFAULT_PAGE_SIZE,
      upsert: (obj, name) => {
        sink.setNamespaceSeen(name, true)
        const mode = namespaceMode(obj)
        const label = (obj as { metadata?: { labels?: Record<string, unknown> } }).metadata?.labels?.[MODE_LABEL]
        if (mode === undefined && label !== undefined) {
          log.warn(
            { namespace: name, label: MODE_LABEL, value: label },
            'unknown mode label value; the global mode applies',
          )
        }
        sink.setNamespaceMode(name, mode)
        const pullable = namespacePullableRegistries(obj)
        if (pullable.error !== undefined) {
          log.warn(
            { namespace: name, annotation: PULLABLE_REGISTRIES_ANNOTATION, reason: pullable.error },
            "unreadable pullable-registries annotation; the webhook's --pullable-registries applies",
          )
        }
        sink.setNamespacePullableRegistries(name, pullable.value)
        const steer = namespaceSteer(obj)
        const steerLabel = (obj as { metadata?: { labels?: Record<string, unknown> } }).metadata?.labels?.[STEER_LABEL]
        if (steer === undefined && steerLabel !== undefined) {
          log.warn(
            { namespace: name, label: STEER_LABEL, value: steerLabel },
            'steer label is neither "true" nor "false"; the global --steer applies',
          )
        }
        sink.setNamespaceSteer(name, steer)
      },
      remove: (name) => {
        sink.setNamespaceSeen(name, false)
        sink.setNamespaceMode(name, undefined)
        sink.setNamespacePullableRegistries(name, undefined)
        sink.setNamespaceSteer(name, undefined)
      },
      malformed: (obj, reason) => skip('Namespace', obj, reason),
    },
    runtimeClasses(),
  ]

  /**
   * RuntimeClasses (node.k8s.io): v1 from 1.20, v1beta1 on 1.19 (and until 1.24). A 404
   * moves to the other version. When neither can be listed (not served, or RBAC without
   * runtimeclasses), the inventory is synced without them: templates naming a RuntimeClass
   * are then warned about, never denied, and the list keeps being retried.
   */
  function runtimeClasses(): Source {
    let version = 0
    let refusals = 0
    return {
      kind: 'RuntimeClass',
      get path() {
        return `/apis/${RUNTIME_CLASS_GROUP}/${RUNTIME_CLASS_VERSIONS[version]}/runtimeclasses`
      },
      pageSize: options.pageSize ?? DEFAULT_PAGE_SIZE,
      upsert: (obj) => {
        const runtimeClass = toRuntimeClass(obj)
        if (runtimeClass.ok) sink.upsertRuntimeClass(runtimeClass.value)
        else skip('RuntimeClass', obj, runtimeClass.error)
      },
      remove: (name) => sink.removeRuntimeClass(name),
      malformed: (obj, reason) => skip('RuntimeClass', obj, reason),
      failed: (err) => {
        if (!(err instanceof ApiStatusError) || (err.code !== 404 && err.code !== 403)) return
        if (err.code === 404) version = (version + 1) % RUNTIME_CLASS_VERSIONS.length
        refusals++
        if (listed.has('RuntimeClass') || (err.code === 404 && refusals < RUNTIME_CLASS_VERSIONS.length)) return
        log.warn(
          { kind: 'RuntimeClass', err: errorMessage(err) },
          'RuntimeClasses cannot be listed; templates naming one are warned about, never denied, until they can',
        )
        onListed('RuntimeClass')
      },
    }
  }

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
    if (synced || closed || listed.size < sources.length) return
    synced = true
    log.info({ kinds: [...listed] }, 'inventory watch synced')
    resolveSynced()
    try {
      options.onSynced?.()
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'onSynced callback failed')
    }
  }

  const common: Omit<ReflectorOptions, 'listerWatcher' | 'pageSize' | 'onListed'> = {
    log,
    retryInitialMs: options.retry?.initialMs ?? DEFAULT_RETRY_INITIAL_MS,
    retryMaxMs: options.retry?.maxMs ?? DEFAULT_RETRY_MAX_MS,
    listTimeoutMs: options.listTimeoutMs ?? DEFAULT_LIST_TIMEOUT_MS,
    watchTimeoutSeconds: options.watchTimeoutSeconds,
  }
  const reflectors = sources.map(
    (source) =>
      new Reflector(source, {
        ...common,
        // A function: the RuntimeClass source's path moves to another version after a 404.
        listerWatcher: httpListerWatcher(http, () => source.path),
        pageSize: source.pageSize,
        onListed: () => {
          if (source.kind === 'RuntimeClass') sink.setRuntimeClassesComplete(true)
          if (source.kind === 'Namespace') sink.setNamespacesComplete(true)
          onListed(source.kind)
        },
      }),
  )
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
