import { readFile } from 'node:fs/promises'
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https'
import type { KubeConfig } from '@kubernetes/client-node'
import { SERVICE_ACCOUNT_DIR } from '../api/service-account.js'

// The one way this program talks to the API server, with two implementations:
// - in a pod, the service account (inClusterHttp): token, CA and address as client-go's
//   rest.InClusterConfig reads them, without @kubernetes/client-node, whose import alone
//   costs tens of MiB of resident memory (its generated models) that neither the agent on
//   every node nor the webhook needs;
// - with a kubeconfig (--kubeconfig, $KUBECONFIG, development, tests), the kubeconfig's
//   server, TLS, credentials and proxy as client-node applies them (kubeConfigHttp).
// The access layer (api.ts, watch.ts, lister-watcher.ts) uses only the KubeHttp interface.

export interface KubeResponse {
  status: number
  body: string
}

export interface KubeRequest {
  method: 'GET' | 'PATCH' | 'POST' | 'PUT' | 'DELETE'
  /** Path and query, e.g. `/api/v1/nodes/node-a`. */
  path: string
  body?: string
  contentType?: string
  timeoutMs: number
}

export interface OpenOptions {
  method: KubeRequest['method']
  /** Path below the cluster's server URL, e.g. `/api/v1/nodes`. */
  path: string
  query?: URLSearchParams
  body?: string
  contentType?: string
  signal: AbortSignal
}

export interface KubeHttp {
  /** The API server's URL, for messages. */
  readonly server: string
  /** A small request whose answer is read whole (at most 16 MiB). */
  request(req: KubeRequest): Promise<KubeResponse>
  /** A request whose response is handed over unread, so a list page or a watch can be streamed. */
  open(req: OpenOptions): Promise<IncomingMessage>
}

/** Bodies larger than this are a broken or hostile peer: buffered requests read small objects. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024
// TCP keep-alive probes on long watches: a dead peer is noticed between events.
const KEEPALIVE_MS = 30_000

/** Sends `req` to `url` with `options` (TLS, headers, agent); resolves with the unread response. */
function openUrl(
  url: URL,
  options: RequestOptions,
  req: OpenOptions,
  release: () => void = () => undefined,
): Promise<IncomingMessage> {
  if (req.signal.aborted) {
    release()
    return Promise.reject(req.signal.reason as Error)
  }
  const send = url.protocol === 'http:' ? httpRequest : httpsRequest
  return new Promise((resolve, reject) => {
    const r = send(url, { ...options, signal: req.signal }, (res) => {
      res.once('close', release)
      resolve(res)
    })
    // Stays attached after the response: a later abort must not be an unhandled 'error'.
    r.on('error', (err) => {
      release()
      reject(err)
    })
    r.on('socket', (socket) => socket.setKeepAlive(true, KEEPALIVE_MS))
    r.end(req.body)
  })
}

function requestUrl(server: string, req: OpenOptions): URL {
  const url = new URL(server.replace(/\/+$/, '') + req.path)
  if (req.query !== undefined) url.search = req.query.toString()
  return url
}

function requestHeaders(req: OpenOptions): Record<string, string | number> {
  const headers: Record<string, string | number> = { accept: 'application/json' }
  if (req.body !== undefined) {
    headers['content-type'] = req.contentType ?? 'application/json'
    headers['content-length'] = Buffer.byteLength(req.body)
  }
  return headers
}

function readBody(res: IncomingMessage): Promise<KubeResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    res.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_RESPONSE_BYTES) res.destroy(new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`))
      else chunks.push(c)
    })
    res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
    res.on('error', reject)
  })
}

/**
 * A streamed response's whole body, without a size limit (a list page of large objects may
 * pass 16 MiB); throws when the response was cut short.
 */
export async function readText(res: IncomingMessage): Promise<string> {
  res.setEncoding('utf8')
  const parts: string[] = []
  for await (const chunk of res) parts.push(chunk as string)
  if (!res.complete) throw new Error('the response was cut before its end (premature close)')
  return parts.join('')
}

/** A buffered request over `open`, the same for both implementations. */
async function requestOver(open: KubeHttp['open'], req: KubeRequest): Promise<KubeResponse> {
  const [path, query] = req.path.split('?', 2) as [string, string | undefined]
  const opened: OpenOptions = { method: req.method, path, signal: AbortSignal.timeout(req.timeoutMs) }
  if (query !== undefined) opened.query = new URLSearchParams(query)
  if (req.body !== undefined) opened.body = req.body
  if (req.contentType !== undefined) opened.contentType = req.contentType
  return readBody(await open(opened))
}

/**
 * The pod's own service account: token and CA from the projected volume, the API server
 * from the environment. The token is read for every request: bound tokens are rotated by
 * the kubelet (hourly), and a request every few seconds makes the read negligible. The CA
 * is read again too, and a changed one gets a new connection pool. One keep-alive agent
 * serves the requests, as client-go's one transport does.
 */
export function inClusterHttp(env: NodeJS.ProcessEnv, dir = SERVICE_ACCOUNT_DIR): KubeHttp {
  const host = env['KUBERNETES_SERVICE_HOST']
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443'
  if (host === undefined || host === '')
    throw new Error('not running in a cluster: KUBERNETES_SERVICE_HOST is not set; give --kubeconfig')
  const hostname = host.includes(':') ? `[${host}]` : host
  const server = `https://${hostname}:${port}`
  let pool: { ca: string; agent: HttpsAgent } | undefined
  const agentFor = async (): Promise<HttpsAgent> => {
    const ca = await readFile(`${dir}/ca.crt`, 'utf8')
    if (pool?.ca !== ca) {
      pool?.agent.destroy()
      pool = { ca, agent: new HttpsAgent({ keepAlive: true, ca }) }
    }
    return pool.agent
  }
  const open = async (req: OpenOptions): Promise<IncomingMessage> => {
    const [token, agent] = await Promise.all([readFile(`${dir}/token`, 'utf8'), agentFor()])
    const headers = { ...requestHeaders(req), authorization: `Bearer ${token.trim()}` }
    return openUrl(requestUrl(server, req), { method: req.method, headers, agent }, req)
  }
  return { server, open, request: (req) => requestOver(open, req) }
}

/**
 * Opens a request with the kubeconfig's server, TLS, credentials and proxy, as client-node
 * applies them (exec and OIDC tokens refreshed). client-node builds a fresh agent for each
 * call; it is destroyed when the response closes. The response is handed over unread, so a
 * watch can stream it.
 */
export async function openKubeRequest(kc: KubeConfig, req: OpenOptions): Promise<IncomingMessage> {
  const cluster = kc.getCurrentCluster()
  if (cluster === null) throw new Error('the kubeconfig has no current cluster')
  const options: RequestOptions = { method: req.method, headers: requestHeaders(req) }
  await kc.applyToHTTPSOptions(options)
  const agent = options.agent
  return openUrl(requestUrl(cluster.server, req), options, req, () => {
    if (agent instanceof Agent) agent.destroy()
  })
}

/** Requests with a kubeconfig's cluster, credentials, TLS and proxy (development, tests). */
export function kubeConfigHttp(kc: KubeConfig): KubeHttp {
  const cluster = kc.getCurrentCluster()
  if (cluster === null) throw new Error('the kubeconfig has no current cluster')
  const open = (req: OpenOptions): Promise<IncomingMessage> => openKubeRequest(kc, req)
  return { server: cluster.server, open, request: (req) => requestOver(open, req) }
}
