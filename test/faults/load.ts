import { Agent, request } from 'node:https'
import { connect } from 'node:tls'

// A small HTTPS load generator for the fault tests: keep-alive loops like the apiserver's
// webhook client, and loops that open a fresh connection (a fresh handshake) per request.

export interface Outcome {
  /** performance.now() when the request was started and when it ended. */
  start: number
  end: number
  status?: number
  error?: string
  /** Sent on a kept-alive connection. */
  reused: boolean
  allowed?: boolean
  /** How many warnings the answer carried. */
  warnings?: number
}

export interface PostOptions {
  url: string
  ca: string
  body: string
  agent: Agent | false
  timeoutMs: number
}

export function post(o: PostOptions): Promise<Outcome> {
  const start = performance.now()
  return new Promise((resolve) => {
    let settled = false
    const done = (out: Omit<Outcome, 'start' | 'end' | 'reused'>): void => {
      if (settled) return
      settled = true
      resolve({ start, end: performance.now(), reused: req.reusedSocket, ...out })
    }
    const req = request(
      `${o.url}/validate?timeout=10s`,
      {
        method: 'POST',
        agent: o.agent,
        ca: o.ca,
        timeout: o.timeoutMs,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(o.body) },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('error', (err) => done({ status: res.statusCode, error: `response: ${err.message}` }))
        res.on('end', () => {
          let response: { allowed?: boolean; warnings?: unknown[] } | undefined
          try {
            response = (
              JSON.parse(Buffer.concat(chunks).toString()) as { response?: { allowed?: boolean; warnings?: unknown[] } }
            ).response
          } catch {
            return done({ status: res.statusCode, error: 'response is not JSON' })
          }
          const out: Omit<Outcome, 'start' | 'end' | 'reused'> = {
            status: res.statusCode,
            warnings: response?.warnings?.length ?? 0,
          }
          if (response?.allowed !== undefined) out.allowed = response.allowed
          done(out)
        })
      },
    )
    req.on('timeout', () => {
      req.destroy(new Error(`timeout after ${o.timeoutMs} ms`))
    })
    req.on('error', (err: NodeJS.ErrnoException) => done({ error: `${err.code ?? ''} ${err.message}`.trim() }))
    req.end(o.body)
  })
}

/** Sends requests one after another until `stop()` says so; every outcome is kept. */
export async function loop(o: PostOptions, stop: () => boolean, out: Outcome[]): Promise<void> {
  while (!stop()) out.push(await post(o))
}

export function keepAliveAgent(ca: string, sockets: number): Agent {
  // Go's http.Transport keeps idle connections 90 s; like the apiserver, reuse them.
  return new Agent({ keepAlive: true, maxSockets: sockets, ca })
}

/** The serial of the certificate a new TLS connection is served. */
export function servedSerial(host: string, port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, ca, servername: undefined }, () => {
      const serial = socket.getPeerCertificate().serialNumber
      socket.end()
      resolve(serial.toUpperCase())
    })
    socket.on('error', reject)
    socket.setTimeout(5000, () => socket.destroy(new Error('TLS connect timeout')))
  })
}

export function failed(o: Outcome): boolean {
  return o.error !== undefined || o.status === undefined || o.status < 200 || o.status > 299
}

export function summary(outcomes: Outcome[]): string {
  const bad = outcomes.filter(failed)
  const byError = new Map<string, number>()
  for (const o of bad) {
    const k = o.error ?? `HTTP ${o.status}`
    byError.set(k, (byError.get(k) ?? 0) + 1)
  }
  return `${outcomes.length} requests, ${bad.length} failed${bad.length > 0 ? ` ${JSON.stringify(Object.fromEntries(byError))}` : ''}`
}

export { setTimeout as sleep } from 'node:timers/promises'
