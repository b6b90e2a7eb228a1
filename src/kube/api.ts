import { readText, type KubeHttp, type KubeRequest } from './http.js'
import { statusError } from './status.js'
import { errorMessage, isObject, type JsonObject } from '../util/guards.js'

// The Kubernetes API as this program uses it, over one KubeHttp (in-cluster or kubeconfig):
// objects read, created, replaced and server-side applied; collections listed page by page;
// events recorded. Bodies stay plain JSON, never typed models (which drop unknown fields and
// turn timestamps into Dates). A refusal is an ApiStatusError with the apiserver's Status
// (status.ts); a failure to reach it is the transport's error. Watches are streamed in
// watch.ts; lister-watcher.ts pairs a streamed list page with a watch for the reflector.

export const DEFAULT_TIMEOUT_MS = 10_000

export interface CallOptions {
  timeoutMs?: number
}

async function call(http: KubeHttp, req: Omit<KubeRequest, 'timeoutMs'>, options: CallOptions): Promise<JsonObject> {
  const res = await http.request({ ...req, timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS })
  if (res.status < 200 || res.status > 299) throw statusError(res.status, res.body)
  let body: unknown
  try {
    body = JSON.parse(res.body)
  } catch {
    throw new Error(`${req.method} ${req.path}: the answer (HTTP ${res.status}) is not JSON`)
  }
  if (!isObject(body)) throw new Error(`${req.method} ${req.path}: the answer (HTTP ${res.status}) is not an object`)
  return body
}

/** GET one object. */
export function getObject(http: KubeHttp, path: string, options: CallOptions = {}): Promise<JsonObject> {
  return call(http, { method: 'GET', path }, options)
}

/** POST an object into a collection. */
export function createObject(
  http: KubeHttp,
  collection: string,
  body: unknown,
  options: CallOptions = {},
): Promise<JsonObject> {
  return call(http, { method: 'POST', path: collection, body: JSON.stringify(body) }, options)
}

/** PUT an object (its metadata.resourceVersion guards the write: 409 when it moved on). */
export function replaceObject(
  http: KubeHttp,
  path: string,
  body: unknown,
  options: CallOptions = {},
): Promise<JsonObject> {
  return call(http, { method: 'PUT', path, body: JSON.stringify(body) }, options)
}

/** Server-side apply (a JSON body is valid apply-patch YAML), forcing conflicts as controllers do. */
export function applyObject(
  http: KubeHttp,
  path: string,
  body: unknown,
  fieldManager: string,
  options: CallOptions = {},
): Promise<JsonObject> {
  const query = `?fieldManager=${encodeURIComponent(fieldManager)}&force=true`
  return call(
    http,
    {
      method: 'PATCH',
      path: `${path}${query}`,
      body: JSON.stringify(body),
      contentType: 'application/apply-patch+yaml',
    },
    options,
  )
}

/** A JSON patch (RFC 6902): `test` operations make it fail whole when the object moved on. */
export function jsonPatchObject(
  http: KubeHttp,
  path: string,
  ops: unknown[],
  fieldManager: string,
  options: CallOptions = {},
): Promise<JsonObject> {
  const query = `?fieldManager=${encodeURIComponent(fieldManager)}`
  return call(
    http,
    { method: 'PATCH', path: `${path}${query}`, body: JSON.stringify(ops), contentType: 'application/json-patch+json' },
    options,
  )
}

export interface ListPage {
  /** `items: null` (Go's empty list) is []. */
  items: unknown[]
  resourceVersion: string
  /** '' on the last page. */
  continue: string
}

/** One page of a list answer, checked. */
export function toListPage(body: unknown): ListPage {
  const metadata = isObject(body) ? body['metadata'] : undefined
  const items = isObject(body) ? body['items'] : undefined
  if (items !== undefined && items !== null && !Array.isArray(items))
    throw new Error('list response items is not an array')
  const rv = isObject(metadata) ? metadata['resourceVersion'] : undefined
  const next = isObject(metadata) ? metadata['continue'] : undefined
  return {
    items: Array.isArray(items) ? items : [],
    resourceVersion: typeof rv === 'string' ? rv : '',
    continue: typeof next === 'string' ? next : '',
  }
}

export interface ListRequest {
  /** Objects per page. */
  limit: number
  /** The previous page's continue token; '' for the first page. */
  continue: string
  /** Aborts the request, the response's reading included. */
  signal: AbortSignal
}

/**
 * One page of a collection, read over a streamed response: no size limit (a page of
 * NodeImageSets may pass 16 MiB) and no timer of its own (the caller's signal is the limit).
 * Without resourceVersion: a consistent read that honours `limit` (with "0" the watch cache
 * answers, and older apiservers ignore `limit` there, sending everything at once).
 */
export async function listPage(http: KubeHttp, collection: string, req: ListRequest): Promise<ListPage> {
  const query = new URLSearchParams({ limit: String(req.limit) })
  if (req.continue !== '') query.set('continue', req.continue)
  const res = await http.open({ method: 'GET', path: collection, query, signal: req.signal })
  const text = await readText(res)
  const status = res.statusCode ?? 0
  if (status !== 200) throw statusError(status, text)
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (err) {
    throw new Error(`list response is not JSON: ${errorMessage(err)}`, { cause: err })
  }
  return toListPage(body)
}

/** A collection page by page (`limit` + `continue`), so no answer holds all of it. */
export async function* listPages(
  http: KubeHttp,
  collection: string,
  limit: number,
  options: CallOptions = {},
): AsyncGenerator<ListPage> {
  let token = ''
  do {
    const signal = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS)
    const page = await listPage(http, collection, { limit, continue: token, signal })
    yield page
    token = page.continue
  } while (token !== '')
}

/** A core/v1 Event, recorded in its object's namespace. */
export function createEvent(
  http: KubeHttp,
  event: JsonObject & { metadata: JsonObject & { namespace: string } },
  options: CallOptions = {},
): Promise<JsonObject> {
  return createObject(http, `/api/v1/namespaces/${encodeURIComponent(event.metadata.namespace)}/events`, event, options)
}

/** A namespaced object's path: `/apis/coordination.k8s.io/v1/namespaces/ns/leases/name`. */
export function namespacedPath(groupVersion: string, namespace: string, plural: string, name?: string): string {
  const base = groupVersion.includes('/') ? `/apis/${groupVersion}` : `/api/${groupVersion}`
  const collection = `${base}/namespaces/${encodeURIComponent(namespace)}/${plural}`
  return name === undefined ? collection : `${collection}/${encodeURIComponent(name)}`
}
