import { readFile } from 'node:fs/promises'
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest, type RequestOptions } from 'node:https'
import type { KubeConfig } from '@kubernetes/client-node'

// A few plain requests to the API server. The agent runs on every node, and importing
// @kubernetes/client-node costs about 73 MiB of resident memory (its generated models),
// more than the agent's whole budget. In a cluster the agent therefore talks with its
// service account directly; with a kubeconfig (development, tests) the library loads it.

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

export interface KubeHttp {
  /** The API server's URL, for messages. */
  readonly server: string
  request(req: KubeRequest): Promise<KubeResponse>
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount'
/** Bodies larger than this are a broken or hostile peer: the agent only reads small objects. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024

function send(options: RequestOptions, req: KubeRequest): Promise<KubeResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...(options.headers as Record<string, string>), accept: 'application/json' }
    if (req.body !== undefined) {
      headers['content-type'] = req.contentType ?? 'application/json'
      headers['content-length'] = Buffer.byteLength(req.body)
    }
    const r = httpsRequest({ ...options, method: req.method, path: req.path, headers, signal: AbortSignal.timeout(req.timeoutMs) }, (res) => {
      readBody(res).then(resolve, reject)
    })
    r.on('error', reject)
    r.end(req.body)
  })
}

/**
 * The pod's own service account: token and CA from the projected volume, the API server
 * from the environment. The token is read for every request: bound tokens are rotated by
 * the kubelet (hourly), and a request every few seconds makes the read negligible.
 */
export function inClusterHttp(env: NodeJS.ProcessEnv, dir = SERVICE_ACCOUNT_DIR): KubeHttp {
  const host = env['KUBERNETES_SERVICE_HOST']
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443'
  if (host === undefined || host === '') throw new Error('not running in a cluster: KUBERNETES_SERVICE_HOST is not set; give --kubeconfig')
  const hostname = host.includes(':') ? `[${host}]` : host
  const server = `https://${hostname}:${port}`
  let ca: Promise<string> | undefined
  return {
    server,
    async request(req) {
      ca ??= readFile(`${dir}/ca.crt`, 'utf8')
      const [token, cert] = await Promise.all([readFile(`${dir}/token`, 'utf8'), ca])
      return send({ host, port: Number(port), ca: cert, headers: { authorization: `Bearer ${token.trim()}` } }, req)
    },
  }
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

// TCP keep-alive probes on long watches: a dead peer is noticed between events.
const KEEPALIVE_MS = 30_000

/**
 * Opens a request with the kubeconfig's server, TLS, credentials and proxy, as client-node
 * applies them (exec and OIDC tokens refreshed). client-node builds a fresh agent for each
 * call; it is destroyed when the response closes. The response is handed over unread, so a
 * watch can stream it.
 */
export async function openKubeRequest(kc: KubeConfig, req: OpenOptions): Promise<IncomingMessage> {
  const cluster = kc.getCurrentCluster()
  if (cluster === null) throw new Error('the kubeconfig has no current cluster')
  const url = new URL(cluster.server.replace(/\/+$/, '') + req.path)
  if (req.query !== undefined) url.search = req.query.toString()
  const headers: Record<string, string | number> = { Accept: 'application/json' }
  if (req.body !== undefined) {
    headers['content-type'] = req.contentType ?? 'application/json'
    headers['content-length'] = Buffer.byteLength(req.body)
  }
  const options: RequestOptions = { method: req.method, headers }
  await kc.applyToHTTPSOptions(options)
  const agent = options.agent
  const release = (): void => {
    if (agent instanceof Agent) agent.destroy()
  }
  if (req.signal.aborted) {
    release()
    throw req.signal.reason
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

/** Requests with a kubeconfig's cluster, credentials, TLS and proxy (development, tests). */
export function kubeConfigHttp(kc: KubeConfig): KubeHttp {
  const cluster = kc.getCurrentCluster()
  if (cluster === null) throw new Error('the kubeconfig has no current cluster')
  return {
    server: cluster.server,
    async request(req) {
      const [path, query] = req.path.split('?', 2) as [string, string | undefined]
      const opened = { method: req.method, path, signal: AbortSignal.timeout(req.timeoutMs) } as OpenOptions
      if (query !== undefined) opened.query = new URLSearchParams(query)
      if (req.body !== undefined) opened.body = req.body
      if (req.contentType !== undefined) opened.contentType = req.contentType
      return readBody(await openKubeRequest(kc, opened))
    },
  }
}
