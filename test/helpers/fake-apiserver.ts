import { randomUUID } from 'node:crypto'
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { KubeConfig } from '@kubernetes/client-node'
import { parse as parseYaml } from 'yaml'
import { isObject } from '../../src/util/guards.js'
import { formatGoTime, parseGoTime, RFC3339, RFC3339_MICRO, type GoTimeLayout } from './go-time.js'

// An in-process Kubernetes API server that speaks the REST wire protocol the real one does
// (lists, chunked newline-delimited watch streams, 410 Expired, Status errors, the four patch
// types), so tests drive the real @kubernetes/client-node against it instead of stubbing it.
// State is in memory; every write bumps one global resourceVersion, as etcd's revision does.
// Timestamps of Leases and Events are decoded as the real one decodes them (metav1.Time and
// MicroTime, Go's time.Parse): a write with a malformed time is refused with its error text,
// and what is stored is what the real one would store (Time without a fraction, MicroTime
// with six digits, both in UTC). Objects given to put() are stored as they are.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type JsonObject = { [key: string]: Json }

export interface KubeObject {
  apiVersion?: string
  kind?: string
  metadata?: {
    name?: string
    generateName?: string
    namespace?: string
    resourceVersion?: string
    uid?: string
    creationTimestamp?: string
    generation?: number
    labels?: Record<string, string>
    annotations?: Record<string, string>
    [key: string]: unknown
  }
  [key: string]: unknown
}

export interface ResourceType {
  /** '' for the core group. */
  group: string
  version: string
  plural: string
  kind: string
  namespaced: boolean
  /** Has a `/status` subresource: the main resource ignores status writes and vice versa. */
  status?: boolean
}

export interface RecordedRequest {
  method: string
  path: string
  query: Record<string, string>
  contentType: string | undefined
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'

export interface FakeApiServerOptions {
  /** How many change events are kept for watches that resume from a resourceVersion. */
  historySize?: number
  /** Extra resource types beyond the built-in table. */
  resources?: ResourceType[]
}

const BUILTIN_RESOURCES: ResourceType[] = [
  { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false, status: true },
  { group: '', version: 'v1', plural: 'nodes', kind: 'Node', namespaced: false, status: true },
  { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true, status: true },
  { group: '', version: 'v1', plural: 'events', kind: 'Event', namespaced: true },
  { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true },
  { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true },
  { group: '', version: 'v1', plural: 'services', kind: 'Service', namespaced: true, status: true },
  { group: '', version: 'v1', plural: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
  {
    group: '',
    version: 'v1',
    plural: 'replicationcontrollers',
    kind: 'ReplicationController',
    namespaced: true,
    status: true,
  },
  { group: '', version: 'v1', plural: 'podtemplates', kind: 'PodTemplate', namespaced: true },
  { group: 'events.k8s.io', version: 'v1', plural: 'events', kind: 'Event', namespaced: true },
  { group: 'apps', version: 'v1', plural: 'deployments', kind: 'Deployment', namespaced: true, status: true },
  { group: 'apps', version: 'v1', plural: 'daemonsets', kind: 'DaemonSet', namespaced: true, status: true },
  { group: 'apps', version: 'v1', plural: 'replicasets', kind: 'ReplicaSet', namespaced: true, status: true },
  { group: 'apps', version: 'v1', plural: 'statefulsets', kind: 'StatefulSet', namespaced: true, status: true },
  { group: 'batch', version: 'v1', plural: 'jobs', kind: 'Job', namespaced: true, status: true },
  { group: 'batch', version: 'v1', plural: 'cronjobs', kind: 'CronJob', namespaced: true, status: true },
  { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true },
  {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    plural: 'validatingwebhookconfigurations',
    kind: 'ValidatingWebhookConfiguration',
    namespaced: false,
  },
  {
    group: 'neverpull.dev',
    version: 'v1alpha1',
    plural: 'nodeimagesets',
    kind: 'NodeImageSet',
    namespaced: false,
    status: true,
  },
  { group: 'node.k8s.io', version: 'v1', plural: 'runtimeclasses', kind: 'RuntimeClass', namespaced: false },
]

/** Where Time and MicroTime fields are, by `apiVersion/kind`. */
const TIME_FIELDS: Record<string, Array<{ path: readonly string[]; layout: GoTimeLayout }>> = {
  'coordination.k8s.io/v1/Lease': [
    { path: ['spec', 'acquireTime'], layout: RFC3339_MICRO },
    { path: ['spec', 'renewTime'], layout: RFC3339_MICRO },
  ],
  'v1/Event': [
    { path: ['eventTime'], layout: RFC3339_MICRO },
    { path: ['series', 'lastObservedTime'], layout: RFC3339_MICRO },
    { path: ['firstTimestamp'], layout: RFC3339 },
    { path: ['lastTimestamp'], layout: RFC3339 },
  ],
  'events.k8s.io/v1/Event': [
    { path: ['eventTime'], layout: RFC3339_MICRO },
    { path: ['series', 'lastObservedTime'], layout: RFC3339_MICRO },
    { path: ['deprecatedFirstTimestamp'], layout: RFC3339 },
    { path: ['deprecatedLastTimestamp'], layout: RFC3339 },
  ],
}

/** encoding/json's words for a JSON value that is not the string a time is read from. */
function jsonKind(value: unknown): string {
  if (typeof value === 'number') return 'number'
  if (typeof value === 'boolean') return 'bool'
  if (Array.isArray(value)) return 'array'
  return 'object'
}

interface HistoryEntry {
  rv: number
  type: 'ADDED' | 'MODIFIED' | 'DELETED'
  resource: ResourceType
  object: KubeObject
  /** The object before a MODIFIED, to turn selector transitions into ADDED/DELETED. */
  previous: KubeObject | undefined
}

interface Watcher {
  resource: ResourceType
  namespace: string | undefined
  matches: (obj: KubeObject) => boolean
  bookmarks: boolean
  res: ServerResponse
  socket: Socket
  timer: NodeJS.Timeout | undefined
}

interface Failure {
  remaining: number
  code: number
  match: ((req: RecordedRequest) => boolean) | undefined
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: JsonObject,
  ) {
    super(message)
  }
}

const REASON_BY_CODE: Record<number, string> = {
  400: 'BadRequest',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  500: 'InternalError',
  503: 'ServiceUnavailable',
}

export function statusObject(code: number, reason: string, message: string, details?: JsonObject): JsonObject {
  const status: JsonObject = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  }
  if (details !== undefined) status.details = details
  return status
}

function clone<T>(value: T): T {
  return structuredClone(value)
}

function apiVersionOf(r: ResourceType): string {
  return r.group === '' ? r.version : `${r.group}/${r.version}`
}

function nowTimestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch)
  const result: Record<string, unknown> = isObject(target) ? clone(target) : {}
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key]
    else result[key] = mergePatch(result[key], value)
  }
  return result
}

function unescapePointer(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~')
}

/** RFC 6902 JSON patch, applied to a copy. */
export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new HttpError(400, 'BadRequest', 'json patch must be an array of operations')
  let doc: unknown = clone(target)
  const resolve = (path: string): { parent: unknown; key: string } => {
    if (path === '' || !path.startsWith('/'))
      throw new HttpError(422, 'Invalid', `invalid JSON pointer ${JSON.stringify(path)}`)
    const tokens = path.slice(1).split('/').map(unescapePointer)
    let parent: unknown = doc
    for (const token of tokens.slice(0, -1)) {
      parent = Array.isArray(parent) ? parent[Number(token)] : isObject(parent) ? parent[token] : undefined
      if (parent === undefined) throw new HttpError(422, 'Invalid', `doc is missing path: ${path}`)
    }
    return { parent, key: tokens[tokens.length - 1] ?? '' }
  }
  const read = (path: string): unknown => {
    if (path === '') return doc
    const { parent, key } = resolve(path)
    const value: unknown = Array.isArray(parent) ? parent[Number(key)] : isObject(parent) ? parent[key] : undefined
    if (value === undefined) throw new HttpError(422, 'Invalid', `doc is missing path: ${path}`)
    return value
  }
  const remove = (path: string): void => {
    const { parent, key } = resolve(path)
    if (Array.isArray(parent)) {
      const index = Number(key)
      if (!(index >= 0 && index < parent.length)) throw new HttpError(422, 'Invalid', `doc is missing path: ${path}`)
      parent.splice(index, 1)
    } else if (isObject(parent) && key in parent) {
      delete parent[key]
    } else {
      throw new HttpError(422, 'Invalid', `doc is missing path: ${path}`)
    }
  }
  const add = (path: string, value: unknown, replace: boolean): void => {
    if (path === '') {
      doc = clone(value)
      return
    }
    const { parent, key } = resolve(path)
    if (Array.isArray(parent)) {
      const index = key === '-' ? parent.length : Number(key)
      if (!(index >= 0 && index <= parent.length)) throw new HttpError(422, 'Invalid', `index out of range: ${path}`)
      if (replace) parent[index] = clone(value)
      else parent.splice(index, 0, clone(value))
    } else if (isObject(parent)) {
      if (replace && !(key in parent)) throw new HttpError(422, 'Invalid', `doc is missing key: ${path}`)
      parent[key] = clone(value)
    } else {
      throw new HttpError(422, 'Invalid', `doc is missing path: ${path}`)
    }
  }
  for (const op of ops) {
    if (!isObject(op) || typeof op.op !== 'string' || typeof op.path !== 'string') {
      throw new HttpError(400, 'BadRequest', 'json patch operation must have op and path')
    }
    switch (op.op) {
      case 'add':
        add(op.path, op.value, false)
        break
      case 'replace':
        add(op.path, op.value, true)
        break
      case 'remove':
        remove(op.path)
        break
      case 'copy':
      case 'move': {
        if (typeof op.from !== 'string') throw new HttpError(400, 'BadRequest', `${op.op} needs from`)
        const value = clone(read(op.from))
        if (op.op === 'move') remove(op.from)
        add(op.path, value, false)
        break
      }
      case 'test':
        if (JSON.stringify(read(op.path)) !== JSON.stringify(op.value)) {
          throw new HttpError(422, 'Invalid', `testing value ${op.path} failed`)
        }
        break
      default:
        throw new HttpError(400, 'BadRequest', `unknown json patch operation ${JSON.stringify(op.op)}`)
    }
  }
  return doc
}

type Requirement = (labels: Record<string, string>) => boolean

/** Label selector grammar: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)`. */
export function parseLabelSelector(selector: string): (obj: KubeObject) => boolean {
  const requirements: Requirement[] = []
  // Split on commas outside parentheses.
  const parts: string[] = []
  let depth = 0
  let current = ''
  for (const ch of selector) {
    if (ch === '(') depth++
    if (ch === ')') depth--
    if (ch === ',' && depth === 0) {
      parts.push(current)
      current = ''
    } else {
      current += ch
    }
  }
  parts.push(current)
  for (const raw of parts) {
    const part = raw.trim()
    if (part === '') continue
    let m: RegExpMatchArray | null
    if ((m = part.match(/^(\S+)\s+(in|notin)\s+\((.*)\)$/)) !== null) {
      const key = m[1] ?? ''
      const values = new Set((m[3] ?? '').split(',').map((v) => v.trim()))
      const negate = m[2] === 'notin'
      requirements.push((l) =>
        negate ? !(key in l) || !values.has(l[key] ?? '') : key in l && values.has(l[key] ?? ''),
      )
    } else if ((m = part.match(/^([^!=\s]+)\s*!=\s*(.*)$/)) !== null) {
      const key = m[1] ?? ''
      const value = (m[2] ?? '').trim()
      requirements.push((l) => l[key] !== value)
    } else if ((m = part.match(/^([^!=\s]+)\s*==?\s*(.*)$/)) !== null) {
      const key = m[1] ?? ''
      const value = (m[2] ?? '').trim()
      requirements.push((l) => l[key] === value)
    } else if ((m = part.match(/^!\s*(\S+)$/)) !== null) {
      const key = m[1] ?? ''
      requirements.push((l) => !(key in l))
    } else if (/^\S+$/.test(part)) {
      requirements.push((l) => part in l)
    } else {
      throw new HttpError(400, 'BadRequest', `unable to parse requirement: ${part}`)
    }
  }
  return (obj) => {
    const labels = obj.metadata?.labels ?? {}
    return requirements.every((r) => r(labels))
  }
}

/** Field selectors: `path=value`, `path==value`, `path!=value` on dotted paths (`metadata.name`, `spec.nodeName`). */
export function parseFieldSelector(selector: string): (obj: KubeObject) => boolean {
  const tests: Array<(obj: KubeObject) => boolean> = []
  for (const raw of selector.split(',')) {
    const part = raw.trim()
    if (part === '') continue
    const m = part.match(/^([^!=]+?)\s*(!=|==|=)\s*(.*)$/)
    if (m === null) throw new HttpError(400, 'BadRequest', `invalid field selector: ${part}`)
    const path = (m[1] ?? '').split('.')
    const negate = m[2] === '!='
    const value = m[3] ?? ''
    tests.push((obj) => {
      let cur: unknown = obj
      for (const p of path) cur = isObject(cur) ? cur[p] : undefined
      const actual =
        cur === undefined || cur === null
          ? ''
          : typeof cur === 'string'
            ? cur
            : typeof cur === 'number' || typeof cur === 'boolean'
              ? String(cur)
              : JSON.stringify(cur)
      return negate ? actual !== value : actual === value
    })
  }
  return (obj) => tests.every((t) => t(obj))
}

const PATCH_TYPES: ReadonlySet<string> = new Set([
  'application/json-patch+json',
  'application/merge-patch+json',
  'application/strategic-merge-patch+json',
])

interface Target {
  resource: ResourceType
  namespace: string | undefined
  name: string | undefined
  subresource: string | undefined
}

export class FakeApiServer {
  readonly requests: RecordedRequest[] = []
  private readonly server: Server
  private readonly sockets = new Set<Socket>()
  private readonly resources: ResourceType[]
  private readonly store = new Map<string, KubeObject>()
  private readonly history: HistoryEntry[] = []
  private readonly historySize: number
  private readonly watchers = new Set<Watcher>()
  private readonly failures: Failure[] = []
  private rv = 1
  /** Watches from a resourceVersion below this get 410 Expired. */
  private compactedRv = 0
  private latencyMs = 0
  private baseUrl = ''

  private constructor(options: FakeApiServerOptions) {
    this.historySize = options.historySize ?? 1000
    this.resources = [...BUILTIN_RESOURCES, ...(options.resources ?? [])]
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.sendStatus(res, 500, 'InternalError', String(err))
        else res.destroy()
      })
    })
    this.server.on('connection', (socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
    })
  }

  static async start(options: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const fake = new FakeApiServer(options)
    await new Promise<void>((resolve, reject) => {
      fake.server.once('error', reject)
      fake.server.listen(0, '127.0.0.1', () => resolve())
    })
    const { port } = fake.server.address() as AddressInfo
    fake.baseUrl = `http://127.0.0.1:${port}`
    return fake
  }

  get url(): string {
    return this.baseUrl
  }

  /** The current (latest) resourceVersion, as a number. */
  get resourceVersion(): number {
    return this.rv
  }

  /** Number of watch streams currently open. */
  get openWatches(): number {
    return this.watchers.size
  }

  /** A KubeConfig whose current context points at this server (plain HTTP, bearer token). */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig()
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.baseUrl, skipTLSVerify: true }],
      users: [{ name: 'fake', token: 'fake-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
      currentContext: 'fake',
    })
    return kc
  }

  // ---- test controls -------------------------------------------------------------------

  /** Create or replace an object directly (no conflict checks); watchers see ADDED or MODIFIED. */
  put<T extends KubeObject>(obj: T): T {
    const resource = this.resourceForObject(obj)
    const name = obj.metadata?.name
    if (name === undefined || name === '') throw new Error('put: metadata.name is required')
    const namespace = resource.namespaced ? (obj.metadata?.namespace ?? 'default') : undefined
    const existing = this.store.get(this.key(resource, namespace, name))
    const stored = this.write(resource, namespace, name, clone(obj), existing)
    return clone(stored) as T
  }

  /** Delete an object directly; returns whether it existed. Watchers see DELETED. */
  remove(apiVersion: string, kind: string, name: string, namespace?: string): boolean {
    const resource = this.resourceForKind(apiVersion, kind)
    const ns = resource.namespaced ? (namespace ?? 'default') : undefined
    const key = this.key(resource, ns, name)
    const existing = this.store.get(key)
    if (existing === undefined) return false
    this.delete(resource, key, existing)
    return true
  }

  get<T extends KubeObject = KubeObject>(
    apiVersion: string,
    kind: string,
    name: string,
    namespace?: string,
  ): T | undefined {
    const resource = this.resourceForKind(apiVersion, kind)
    const ns = resource.namespaced ? (namespace ?? 'default') : undefined
    const obj = this.store.get(this.key(resource, ns, name))
    return obj === undefined ? undefined : (clone(obj) as T)
  }

  list<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace?: string): T[] {
    const resource = this.resourceForKind(apiVersion, kind)
    return this.select(resource, namespace, () => true).map((o) => clone(o) as T)
  }

  /** Forget all change history: the next watch from any older resourceVersion gets 410 Expired. */
  expireHistory(): void {
    this.history.length = 0
    this.compactedRv = this.rv
  }

  /** Destroy every open watch socket mid-stream (no terminating chunk), as a network cut does. */
  breakWatches(): void {
    for (const w of [...this.watchers]) {
      this.dropWatcher(w)
      w.socket.destroy()
    }
  }

  /** End every open watch cleanly, as the apiserver does when a watch's timeout runs out. */
  endWatches(): void {
    for (const w of [...this.watchers]) {
      this.dropWatcher(w)
      w.res.end()
    }
  }

  /** Send a BOOKMARK at the current resourceVersion to every watch that asked for bookmarks. */
  bookmark(): void {
    for (const w of this.watchers) {
      if (!w.bookmarks) continue
      this.writeEvent(w, 'BOOKMARK', {
        kind: w.resource.kind,
        apiVersion: apiVersionOf(w.resource),
        metadata: { resourceVersion: String(this.rv) },
      })
    }
  }

  /** Write a raw line to every open watch stream (malformed events, server-side ERRORs). */
  sendRaw(line: string): void {
    for (const w of this.watchers) {
      if (!w.res.writableEnded && !w.socket.destroyed) w.res.write(`${line}\n`)
    }
  }

  /** Delay every request (watch streams included) by `ms` before it is handled. */
  setLatency(ms: number): void {
    this.latencyMs = ms
  }

  /** Answer the next `count` matching requests with a Status error of `code`. */
  failNext(count: number, code = 500, match?: (req: RecordedRequest) => boolean): void {
    this.failures.push({ remaining: count, code, match })
  }

  async close(): Promise<void> {
    for (const w of [...this.watchers]) this.dropWatcher(w)
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    this.server.closeAllConnections()
    for (const s of this.sockets) s.destroy()
    await closed
  }

  // ---- storage ----------------------------------------------------------------------------

  private key(resource: ResourceType, namespace: string | undefined, name: string): string {
    return `${resource.group}/${resource.plural}/${namespace ?? ''}/${name}`
  }

  private resourceForKind(apiVersion: string, kind: string): ResourceType {
    const r = this.resources.find((x) => apiVersionOf(x) === apiVersion && x.kind === kind)
    if (r === undefined) throw new Error(`fake apiserver: unknown kind ${apiVersion} ${kind}`)
    return r
  }

  private resourceForObject(obj: KubeObject): ResourceType {
    if (typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') {
      throw new Error('fake apiserver: object needs apiVersion and kind')
    }
    return this.resourceForKind(obj.apiVersion, obj.kind)
  }

  private select(
    resource: ResourceType,
    namespace: string | undefined,
    matches: (o: KubeObject) => boolean,
  ): KubeObject[] {
    const prefix =
      namespace === undefined
        ? `${resource.group}/${resource.plural}/`
        : `${resource.group}/${resource.plural}/${namespace}/`
    const out: KubeObject[] = []
    for (const [key, obj] of this.store) {
      if (key.startsWith(prefix) && matches(obj)) out.push(obj)
    }
    out.sort((a, b) => {
      const ka = `${a.metadata?.namespace ?? ''}/${a.metadata?.name ?? ''}`
      const kb = `${b.metadata?.namespace ?? ''}/${b.metadata?.name ?? ''}`
      return ka < kb ? -1 : ka > kb ? 1 : 0
    })
    return out
  }

  /** Store `obj` as the new state, stamping server-owned metadata, and emit the event. */
  private write(
    resource: ResourceType,
    namespace: string | undefined,
    name: string,
    obj: KubeObject,
    existing: KubeObject | undefined,
  ): KubeObject {
    const rv = ++this.rv
    const metadata = { ...(obj.metadata ?? {}) }
    metadata.name = name
    if (namespace !== undefined) metadata.namespace = namespace
    else delete metadata.namespace
    delete metadata.generateName
    metadata.uid = existing?.metadata?.uid ?? metadata.uid ?? randomUUID()
    metadata.creationTimestamp = existing?.metadata?.creationTimestamp ?? metadata.creationTimestamp ?? nowTimestamp()
    metadata.resourceVersion = String(rv)
    if (existing === undefined) metadata.generation = 1
    else {
      const specChanged = JSON.stringify(existing.spec) !== JSON.stringify(obj.spec)
      metadata.generation = (existing.metadata?.generation ?? 1) + (specChanged ? 1 : 0)
    }
    const stored: KubeObject = { ...obj, apiVersion: apiVersionOf(resource), kind: resource.kind, metadata }
    this.store.set(this.key(resource, namespace, name), stored)
    this.record({
      rv,
      type: existing === undefined ? 'ADDED' : 'MODIFIED',
      resource,
      object: stored,
      previous: existing,
    })
    return stored
  }

  private delete(resource: ResourceType, key: string, existing: KubeObject): KubeObject {
    this.store.delete(key)
    const rv = ++this.rv
    // The apiserver sends the last state with the deletion's resourceVersion.
    const gone: KubeObject = {
      ...clone(existing),
      metadata: { ...clone(existing.metadata ?? {}), resourceVersion: String(rv) },
    }
    this.record({ rv, type: 'DELETED', resource, object: gone, previous: existing })
    return gone
  }

  private record(entry: HistoryEntry): void {
    this.history.push(entry)
    while (this.history.length > this.historySize) {
      const dropped = this.history.shift()
      if (dropped !== undefined) this.compactedRv = dropped.rv
    }
    for (const w of this.watchers) this.deliver(w, entry)
  }

  // ---- watch streams ---------------------------------------------------------------------

  private deliver(w: Watcher, e: HistoryEntry): void {
    if (e.resource !== w.resource) return
    const ns = e.object.metadata?.namespace
    if (w.namespace !== undefined && ns !== w.namespace) return
    const now = w.matches(e.object)
    if (e.type === 'MODIFIED') {
      const before = e.previous !== undefined && w.matches(e.previous)
      if (now && before) this.writeEvent(w, 'MODIFIED', e.object)
      else if (now) this.writeEvent(w, 'ADDED', e.object)
      else if (before) this.writeEvent(w, 'DELETED', e.object)
      return
    }
    if (now) this.writeEvent(w, e.type, e.object)
  }

  private writeEvent(w: Watcher, type: WatchEventType, object: unknown): void {
    if (w.res.writableEnded || w.socket.destroyed) return
    w.res.write(`${JSON.stringify({ type, object })}\n`)
  }

  private dropWatcher(w: Watcher): void {
    if (w.timer !== undefined) clearTimeout(w.timer)
    this.watchers.delete(w)
  }

  private startWatch(
    req: IncomingMessage,
    res: ServerResponse,
    resource: ResourceType,
    namespace: string | undefined,
    query: URLSearchParams,
  ): void {
    const matches = this.selectorFor(query, namespace)
    const fromParam = query.get('resourceVersion') ?? ''
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' })
    res.flushHeaders()
    const socket = req.socket
    const w: Watcher = {
      resource,
      namespace,
      matches,
      bookmarks: query.get('allowWatchBookmarks') === 'true' || query.get('allowWatchBookmarks') === '1',
      res,
      socket,
      timer: undefined,
    }
    if (fromParam === '' || fromParam === '0') {
      // "Any" resourceVersion: the apiserver first synthesises ADDED for everything that exists.
      for (const obj of this.select(resource, namespace, matches)) this.writeEvent(w, 'ADDED', obj)
    } else {
      const from = Number(fromParam)
      if (!Number.isInteger(from) || from < 0) {
        this.writeEvent(w, 'ERROR', statusObject(400, 'BadRequest', `invalid resource version: ${fromParam}`))
        res.end()
        return
      }
      if (from < this.compactedRv) {
        // What the watch cache answers for a resourceVersion it no longer holds.
        this.writeEvent(
          w,
          'ERROR',
          statusObject(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`),
        )
        res.end()
        return
      }
      for (const e of this.history) if (e.rv > from) this.deliver(w, e)
    }
    this.watchers.add(w)
    const timeoutSeconds = Number(query.get('timeoutSeconds') ?? '')
    if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) {
      w.timer = setTimeout(() => {
        this.dropWatcher(w)
        res.end()
      }, timeoutSeconds * 1000)
    }
    const drop = (): void => this.dropWatcher(w)
    res.on('close', drop)
    socket.on('close', drop)
  }

  private selectorFor(query: URLSearchParams, _namespace: string | undefined): (obj: KubeObject) => boolean {
    const label = query.get('labelSelector')
    const field = query.get('fieldSelector')
    const byLabel = label === null || label === '' ? undefined : parseLabelSelector(label)
    const byField = field === null || field === '' ? undefined : parseFieldSelector(field)
    return (obj) => (byLabel === undefined || byLabel(obj)) && (byField === undefined || byField(obj))
  }

  // ---- HTTP ------------------------------------------------------------------------------

  private sendJson(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body)
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
    res.end(text)
  }

  private sendStatus(res: ServerResponse, code: number, reason: string, message: string, details?: JsonObject): void {
    this.sendJson(res, code, statusObject(code, reason, message, details))
  }

  private async readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks).toString('utf8')
  }

  private parseTarget(segments: string[]): Target | 'discovery' | undefined {
    let group: string
    let version: string
    let rest: string[]
    if (segments[0] === 'api') {
      group = ''
      version = segments[1] ?? ''
      rest = segments.slice(2)
    } else if (segments[0] === 'apis') {
      group = segments[1] ?? ''
      version = segments[2] ?? ''
      rest = segments.slice(3)
    } else {
      return undefined
    }
    if (rest.length === 0) return 'discovery'
    const inGv = this.resources.filter((r) => r.group === group && r.version === version)
    if (inGv.length === 0) return undefined
    const find = (plural: string | undefined): ResourceType | undefined => inGv.find((r) => r.plural === plural)
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const namespaced = find(rest[2])
      if (namespaced?.namespaced === true) {
        if (rest.length > 5) return undefined
        return { resource: namespaced, namespace: rest[1], name: rest[3], subresource: rest[4] }
      }
    }
    const resource = find(rest[0])
    if (resource === undefined || rest.length > 3) return undefined
    return { resource, namespace: undefined, name: rest[1], subresource: rest[2] }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake')
    const query = url.searchParams
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(query),
      contentType: req.headers['content-type'],
    }
    this.requests.push(record)
    if (this.latencyMs > 0) await sleep(this.latencyMs)
    const failure = this.failures.find((f) => f.remaining > 0 && (f.match === undefined || f.match(record)))
    if (failure !== undefined) {
      failure.remaining--
      await this.readBody(req)
      this.sendStatus(res, failure.code, REASON_BY_CODE[failure.code] ?? 'InternalError', 'injected failure')
      return
    }
    try {
      await this.route(req, res, url, query)
    } catch (err) {
      if (err instanceof HttpError) this.sendStatus(res, err.code, err.reason, err.message, err.details)
      else throw err
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL, query: URLSearchParams): Promise<void> {
    const segments = url.pathname
      .split('/')
      .filter((s) => s !== '')
      .map(decodeURIComponent)
    if (url.pathname === '/version') {
      this.sendJson(res, 200, { major: '1', minor: '33', gitVersion: 'v1.33.0-fake', platform: 'linux/amd64' })
      return
    }
    if (segments.length === 1 && segments[0] === 'api') {
      this.sendJson(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] })
      return
    }
    if (segments.length === 1 && segments[0] === 'apis') {
      this.sendJson(res, 200, this.groupList())
      return
    }
    const target = this.parseTarget(segments)
    if (target === undefined) throw new HttpError(404, 'NotFound', 'the server could not find the requested resource')
    if (target === 'discovery') {
      const group = segments[0] === 'api' ? '' : (segments[1] ?? '')
      const version = segments[0] === 'api' ? (segments[1] ?? '') : (segments[2] ?? '')
      this.sendJson(res, 200, this.resourceList(group, version))
      return
    }
    const { resource, namespace, name, subresource } = target
    const method = req.method ?? 'GET'
    const qualified = resource.group === '' ? resource.plural : `${resource.plural}.${resource.group}`
    const notFound = (n: string): HttpError =>
      new HttpError(404, 'NotFound', `${qualified} "${n}" not found`, {
        name: n,
        group: resource.group,
        kind: resource.plural,
      })
    if (subresource !== undefined && !(subresource === 'status' && resource.status === true)) {
      throw new HttpError(404, 'NotFound', 'the server could not find the requested resource')
    }

    if (name === undefined) {
      if (method === 'GET') {
        if (query.get('watch') === 'true' || query.get('watch') === '1') {
          this.startWatch(req, res, resource, namespace, query)
          return
        }
        this.sendJson(res, 200, this.listBody(resource, namespace, query))
        return
      }
      if (method === 'POST') {
        const body = this.decodeTimes(resource, await this.readJsonBody(req))
        const n =
          body.metadata?.name ??
          (body.metadata?.generateName !== undefined
            ? `${body.metadata.generateName}${randomUUID().slice(0, 5)}`
            : undefined)
        if (n === undefined || n === '')
          throw new HttpError(
            422,
            'Invalid',
            `${resource.kind} "" is invalid: metadata.name: Required value: name or generateName is required`,
          )
        this.checkNamespace(resource, namespace, body)
        const key = this.key(resource, namespace, n)
        if (this.store.has(key)) {
          throw new HttpError(409, 'AlreadyExists', `${qualified} "${n}" already exists`, {
            name: n,
            group: resource.group,
            kind: resource.plural,
          })
        }
        if (query.get('dryRun') === 'All') {
          this.sendJson(res, 201, body)
          return
        }
        this.sendJson(res, 201, this.write(resource, namespace, n, body, undefined))
        return
      }
      if (method === 'DELETE') {
        const matches = this.selectorFor(query, namespace)
        const victims = this.select(resource, namespace, matches)
        for (const v of victims)
          this.delete(resource, this.key(resource, v.metadata?.namespace, v.metadata?.name ?? ''), v)
        this.sendJson(res, 200, {
          kind: `${resource.kind}List`,
          apiVersion: apiVersionOf(resource),
          metadata: { resourceVersion: String(this.rv) },
          items: victims,
        })
        return
      }
      throw new HttpError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`)
    }

    if (resource.namespaced && namespace === undefined)
      throw new HttpError(404, 'NotFound', 'the server could not find the requested resource')
    const key = this.key(resource, namespace, name)
    const existing = this.store.get(key)
    switch (method) {
      case 'GET':
        if (existing === undefined) throw notFound(name)
        this.sendJson(res, 200, existing)
        return
      case 'PUT': {
        const body = this.decodeTimes(resource, await this.readJsonBody(req))
        if (existing === undefined) throw notFound(name)
        if (body.metadata?.name !== undefined && body.metadata.name !== name) {
          throw new HttpError(
            400,
            'BadRequest',
            `the name of the object (${body.metadata.name}) does not match the name on the URL (${name})`,
          )
        }
        this.checkNamespace(resource, namespace, body)
        this.checkResourceVersion(qualified, name, existing, body.metadata?.resourceVersion)
        this.sendJson(res, 200, this.update(resource, namespace, name, existing, body, subresource))
        return
      }
      case 'PATCH': {
        const text = await this.readBody(req)
        const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? ''
        const isApply = contentType === 'application/apply-patch+yaml'
        if (!isApply && !PATCH_TYPES.has(contentType)) {
          throw new HttpError(
            415,
            'UnsupportedMediaType',
            `the body of the request was in an unknown format - accepted media types include: ${[...PATCH_TYPES].join(', ')}, application/apply-patch+yaml`,
          )
        }
        let patch: unknown
        try {
          patch = isApply ? parseYaml(text) : JSON.parse(text)
        } catch (err) {
          throw new HttpError(400, 'BadRequest', `error decoding patch: ${String(err)}`)
        }
        if (isApply) {
          if ((query.get('fieldManager') ?? '') === '') {
            throw new HttpError(
              422,
              'Invalid',
              'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
            )
          }
          if (!isObject(patch)) throw new HttpError(400, 'BadRequest', 'apply patch must be an object')
          const applied = patch as KubeObject
          if (applied.metadata?.name !== undefined && applied.metadata.name !== name) {
            throw new HttpError(
              400,
              'BadRequest',
              `the name of the object (${applied.metadata.name}) does not match the name on the URL (${name})`,
            )
          }
          if (existing === undefined) {
            if (subresource !== undefined) throw notFound(name)
            this.checkNamespace(resource, namespace, applied)
            this.sendJson(
              res,
              201,
              this.write(resource, namespace, name, this.decodeTimes(resource, clone(applied)), undefined),
            )
            return
          }
          this.checkResourceVersion(qualified, name, existing, applied.metadata?.resourceVersion)
          const merged = this.decodeTimes(resource, mergePatch(existing, applied) as KubeObject)
          this.sendJson(res, 200, this.update(resource, namespace, name, existing, merged, subresource))
          return
        }
        if (existing === undefined) throw notFound(name)
        let patched: unknown
        if (contentType === 'application/json-patch+json') {
          patched = jsonPatch(existing, patch)
        } else {
          // Strategic merge is treated as a plain merge patch: enough for the objects tests write.
          patched = mergePatch(existing, patch)
          if (isObject(patch) && isObject(patch.metadata) && typeof patch.metadata.resourceVersion === 'string') {
            this.checkResourceVersion(qualified, name, existing, patch.metadata.resourceVersion)
          }
        }
        if (!isObject(patched)) throw new HttpError(422, 'Invalid', 'patch result is not an object')
        this.sendJson(
          res,
          200,
          this.update(resource, namespace, name, existing, this.decodeTimes(resource, patched), subresource),
        )
        return
      }
      case 'DELETE': {
        await this.readBody(req)
        if (existing === undefined) throw notFound(name)
        const gone = this.delete(resource, key, existing)
        this.sendJson(res, 200, {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Success',
          details: { name, group: resource.group, kind: resource.plural, uid: gone.metadata?.uid ?? '' },
        })
        return
      }
      default:
        throw new HttpError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')
    }
  }

  /**
   * Decodes the times of a body as the apiserver's JSON decoder does: a malformed one is a
   * 400 `<Kind> in version "<v>" cannot be handled as a <Kind>: <Go's error>`, a good one is
   * re-encoded the way the apiserver would store it.
   */
  private decodeTimes(resource: ResourceType, body: KubeObject): KubeObject {
    const fields = TIME_FIELDS[`${apiVersionOf(resource)}/${resource.kind}`]
    if (fields === undefined) return body
    const refuse = (message: string): HttpError =>
      new HttpError(
        400,
        'BadRequest',
        `${resource.kind} in version ${JSON.stringify(resource.version)} cannot be handled as a ${resource.kind}: ${message}`,
      )
    for (const { path, layout } of fields) {
      let parent: unknown = body
      for (const p of path.slice(0, -1)) parent = isObject(parent) ? parent[p] : undefined
      const last = path[path.length - 1]!
      if (!isObject(parent) || !(last in parent)) continue
      const value = parent[last]
      if (value === null) {
        delete parent[last]
        continue
      }
      if (typeof value !== 'string')
        throw refuse(`json: cannot unmarshal ${jsonKind(value)} into Go value of type string`)
      const parsed = parseGoTime(layout, value)
      if (!parsed.ok) throw refuse(parsed.error)
      parent[last] = formatGoTime(parsed.time, layout)
    }
    return body
  }

  /** Main resource writes keep the stored status; `/status` writes change only status. */
  private update(
    resource: ResourceType,
    namespace: string | undefined,
    name: string,
    existing: KubeObject,
    incoming: KubeObject,
    subresource: string | undefined,
  ): KubeObject {
    let next: KubeObject
    if (subresource === 'status') {
      next = clone(existing)
      if (incoming.status === undefined) delete next.status
      else next.status = clone(incoming.status)
    } else {
      next = clone(incoming)
      if (resource.status === true) {
        if (existing.status === undefined) delete next.status
        else next.status = clone(existing.status)
      }
    }
    const metadata = { ...(next.metadata ?? {}) }
    delete metadata.resourceVersion
    next.metadata = metadata
    return this.write(resource, namespace, name, next, existing)
  }

  private checkNamespace(resource: ResourceType, namespace: string | undefined, body: KubeObject): void {
    const ns = body.metadata?.namespace
    if (resource.namespaced && ns !== undefined && ns !== '' && ns !== namespace) {
      throw new HttpError(
        400,
        'BadRequest',
        'the namespace of the provided object does not match the namespace sent on the request',
      )
    }
  }

  private checkResourceVersion(qualified: string, name: string, existing: KubeObject, rv: string | undefined): void {
    if (rv !== undefined && rv !== '' && rv !== existing.metadata?.resourceVersion) {
      throw new HttpError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${qualified} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      )
    }
  }

  private async readJsonBody(req: IncomingMessage): Promise<KubeObject> {
    const text = await this.readBody(req)
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch (err) {
      throw new HttpError(400, 'BadRequest', `error decoding body: ${String(err)}`)
    }
    if (!isObject(body)) throw new HttpError(400, 'BadRequest', 'body must be a JSON object')
    return body
  }

  private listBody(resource: ResourceType, namespace: string | undefined, query: URLSearchParams): JsonObject {
    const all = this.select(resource, namespace, this.selectorFor(query, namespace))
    const limit = Number(query.get('limit') ?? '0')
    const token = query.get('continue') ?? ''
    let start = 0
    let listRv = String(this.rv)
    if (token !== '') {
      try {
        const decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { start: number; rv: string }
        start = decoded.start
        listRv = decoded.rv
      } catch {
        throw new HttpError(400, 'BadRequest', 'continue key is not valid')
      }
    }
    const metadata: JsonObject = { resourceVersion: listRv }
    let items = all.slice(start)
    if (Number.isInteger(limit) && limit > 0 && items.length > limit) {
      items = items.slice(0, limit)
      metadata.continue = Buffer.from(JSON.stringify({ start: start + limit, rv: listRv })).toString('base64url')
      metadata.remainingItemCount = all.length - start - limit
    }
    return {
      kind: `${resource.kind}List`,
      apiVersion: apiVersionOf(resource),
      metadata,
      items: items as unknown as Json[],
    }
  }

  private groupList(): JsonObject {
    const groups = new Map<string, Set<string>>()
    for (const r of this.resources) {
      if (r.group === '') continue
      const versions = groups.get(r.group) ?? new Set<string>()
      versions.add(r.version)
      groups.set(r.group, versions)
    }
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: [...groups].map(([name, versions]) => {
        const list = [...versions].map((version) => ({ groupVersion: `${name}/${version}`, version }))
        return { name, versions: list, preferredVersion: list[0] ?? null }
      }),
    }
  }

  private resourceList(group: string, version: string): JsonObject {
    const inGv = this.resources.filter((r) => r.group === group && r.version === version)
    if (inGv.length === 0) throw new HttpError(404, 'NotFound', 'the server could not find the requested resource')
    const verbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']
    const resources: Json[] = []
    for (const r of inGv) {
      resources.push({
        name: r.plural,
        singularName: r.kind.toLowerCase(),
        namespaced: r.namespaced,
        kind: r.kind,
        verbs,
      })
      if (r.status === true) {
        resources.push({
          name: `${r.plural}/status`,
          singularName: '',
          namespaced: r.namespaced,
          kind: r.kind,
          verbs: ['get', 'patch', 'update'],
        })
      }
    }
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: group === '' ? version : `${group}/${version}`,
      resources,
    }
  }
}

export function startFakeApiServer(options?: FakeApiServerOptions): Promise<FakeApiServer> {
  return FakeApiServer.start(options)
}

export interface HttpsFront {
  port: number
  /** Drops its connections and stops listening. */
  close(): Promise<void>
}

/**
 * The fake apiserver behind TLS, as a pod reaches the real one (KUBERNETES_SERVICE_HOST and
 * _PORT, trusted through the service account's ca.crt): every request is passed through to
 * `upstream` as it is. `seen` is told of each request first (to record its credentials).
 */
export async function httpsFront(
  upstream: string,
  tls: { cert: string | Buffer; key: string | Buffer },
  seen?: (req: IncomingMessage) => void,
): Promise<HttpsFront> {
  const to = new URL(upstream)
  const front = createHttpsServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    seen?.(req)
    const out = httpRequest(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      },
    )
    out.on('error', () => res.destroy())
    req.pipe(out)
  })
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r))
  return {
    port: (front.address() as AddressInfo).port,
    close: () => {
      front.closeAllConnections()
      return new Promise<void>((r) => front.close(() => r()))
    },
  }
}
