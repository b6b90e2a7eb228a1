import { readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
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

function send(options: RequestOptions, secure: boolean, req: KubeRequest): Promise<KubeResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...(options.headers as Record<string, string>), accept: 'application/json' }
    if (req.body !== undefined) {
      headers['content-type'] = req.contentType ?? 'application/json'
      headers['content-length'] = Buffer.byteLength(req.body)
    }
    const r = (secure ? httpsRequest : httpRequest)({ ...options, method: req.method, path: req.path, headers, signal: AbortSignal.timeout(req.timeoutMs) }, (res) => {
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
      return send({ host, port: Number(port), ca: cert, headers: { authorization: `Bearer ${token.trim()}` } }, true, req)
    },
  }
}

/** Requests with a kubeconfig's cluster, credentials, TLS and proxy, as client-node applies them. */
export function kubeConfigHttp(kc: KubeConfig): KubeHttp {
  const cluster = kc.getCurrentCluster()
  if (cluster === null) throw new Error('the kubeconfig has no current cluster')
  const url = new URL(cluster.server)
  const secure = url.protocol === 'https:'
  return {
    server: cluster.server,
    async request(req) {
      const options: RequestOptions = { hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port === '' ? (secure ? 443 : 80) : Number(url.port), headers: {} }
      await kc.applyToHTTPSOptions(options)
      const prefix = url.pathname.replace(/\/$/, '')
      return send(options, secure, { ...req, path: `${prefix}${req.path}` })
    },
  }
}
