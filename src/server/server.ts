import Fastify, { type FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { certificateNotAfter, watchTls, type TlsWatcher } from './tls-reload.js'
import type { WebhookConfig } from '../config/webhook.js'
import type { LoadSummary } from '../inventory/file.js'
import { InventoryIndex } from '../inventory/inventory-index.js'
import { Lifecycle } from './lifecycle.js'
import { createMetrics } from './metrics.js'
import { opsApp, webhookApp } from './app.js'
import { systemClock } from '../util/clock.js'

/**
 * The apiserver's webhook client keeps idle connections for 90 s (Go's http.Transport
 * default); the server keeps them a little longer so it never closes one the client is
 * about to reuse, which would fail that admission call.
 */
export const KEEP_ALIVE_MS = 95_000

/** TLS 1.2 at least; for 1.2, only forward-secret AEAD suites. TLS 1.3 suites are all modern. */
export const TLS_OPTIONS = {
  minVersion: 'TLSv1.2',
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  honorCipherOrder: true,
} as const

export interface RunningWebhook {
  app: FastifyInstance
  ops?: FastifyInstance
  url: string
  inventory: InventoryIndex
  summary?: LoadSummary
  /** Stop reporting ready, wait `shutdownDelayMs` for endpoints to drain, finish in-flight requests, exit. */
  shutdown(): Promise<void>
}

/**
 * Where the webhook's lines go: pino's own stdout destination, spelled out. Asynchronous
 * (sonic-boom writes in the background; lines that arrive while a write is in flight go out
 * together), nothing held back (minLength 0), flushed by pino when the process exits.
 */
export function logDestination(dest: number | string): ReturnType<typeof pino.destination> {
  return pino.destination({ dest, sync: false, minLength: 0 })
}

export interface StartOptions {
  /** Pino destination; stdout when absent. */
  logStream?: NodeJS.WritableStream
  now?: () => number
}

export async function startWebhook(config: WebhookConfig, options: StartOptions = {}): Promise<RunningWebhook> {
  const now = options.now ?? Date.now
  // Loaded only where used: node-forge, yaml and client-node cost RSS a webhook on the other
  // path never needs (bench: idle RSS).
  if (config.dev) await (await import('../certs/files.js')).ensureDevCertificates('certs')
  const [cert, key] = await Promise.all([readFile(config.tlsCert, 'utf8'), readFile(config.tlsKey, 'utf8')])

  const inventory = new InventoryIndex({ staleAfterMs: config.staleAfterMs })
  let ready = (): boolean => false
  let draining = false
  const isReady = (): boolean => ready() && !draining

  const log = pino(
    { level: config.logLevel, redact: ['req.headers.authorization', 'req.headers.cookie', '*.token', '*.password'] },
    options.logStream ?? logDestination(1),
  )
  // The line per review carries a closed set of fields, each picked by name from the record
  // (logFields, mutationFields in app.ts), none of them a credential: the redaction above
  // could never find anything in it, and walking every line for `*.token` and `*.password`
  // was a fifth of the line's cost (1.5 of 7 µs in a warm loop, more between requests).
  // Error lines, which carry `err` objects, keep it.
  const reviewLog = log.child({}, { redact: [] })
  const app = Fastify({
    https: { cert, key, ...TLS_OPTIONS },
    // The app writes one line per admission to its own logger (the review's uid is the
    // correlation id). Fastify's request logging machinery, even silenced, cost about
    // 12 us of CPU per request in the benchmark, a sixth of what a bare server spends.
    logger: false,
    keepAliveTimeout: KEEP_ALIVE_MS,
    // Requests that arrive on open connections while closing are still answered: a 503
    // would be "failed calling webhook" for the apiserver, and a failed pod create.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  })
  const metrics = createMetrics({ inventory, now, processMetrics: true })
  const servingCertificate = (pem: string): void => {
    const notAfter = certificateNotAfter(pem)
    if (notAfter !== undefined) metrics.servingCertificate(notAfter)
  }
  servingCertificate(cert)
  await app.register(webhookApp, {
    inventory,
    mode: config.mode,
    metrics,
    ready: isReady,
    now,
    agentServiceAccount: config.agentServiceAccount,
    steer: { global: config.steer, maxNodes: config.steerMaxNodes },
    log,
    reviewLog,
    pullable: config.pullableRegistries,
    imageGc: config.imageGc,
  })

  // The parts, started in this order and stopped in the reverse one (lifecycle.ts): the
  // inventory first, so the listeners open onto data; on SIGTERM the certificate watch and
  // the listeners close first, and the inventory and audit last.
  const lifecycle = new Lifecycle(log)
  let summary: LoadSummary | undefined
  if (config.inventoryFile !== undefined) {
    const file = config.inventoryFile
    let loaded = false
    lifecycle.add({
      name: 'inventory',
      start: async () => {
        const { loadInventoryFile } = await import('../inventory/file.js')
        summary = await loadInventoryFile(file, inventory, now())
        loaded = true
        log.info({ inventory: file, ...summary }, 'inventory loaded')
      },
      ready: () => loaded,
      stop: () => undefined,
    })
  } else {
    const { startInventoryWatch } = await import('../inventory/watch.js')
    const { startAudit } = await import('../audit/runner.js')
    const { connectKube } = await import('../kube/connect.js')
    // In a pod: the service account, without client-node (idle RSS); else the kubeconfig.
    const service = config.kubernetesService
    const http = await connectKube(
      { kubeconfig: config.kubeconfig, serviceAccountDir: config.serviceAccountDir },
      service === undefined ? {} : { KUBERNETES_SERVICE_HOST: service.host, KUBERNETES_SERVICE_PORT: service.port },
    )
    let watch: ReturnType<typeof startInventoryWatch> | undefined
    lifecycle.add({
      name: 'inventory',
      start: () => {
        watch = startInventoryWatch({
          http,
          sink: inventory,
          log,
          metrics: {
            skipped: (kind: string) => metrics.inventorySkipped(kind),
            fieldSkipped: (kind: string, field: string) => metrics.inventoryFieldSkipped(kind, field),
          },
          onSynced: () =>
            log.info({ nodes: inventory.nodeCount, imageSets: inventory.imageSetCount }, 'inventory synced'),
        })
      },
      ready: () => watch?.isSynced() === true,
      stop: () => watch?.close(),
    })
    if (config.auditIntervalMs > 0) {
      let audit: { close(): Promise<void> } | undefined
      let stopped = false
      lifecycle.add({
        name: 'audit',
        // Auditing a half-synced inventory would only find "unknown": it begins once the
        // inventory is whole. It never holds readiness back.
        start: () => {
          void watch?.synced.then(
            () => {
              if (stopped || draining) return
              metrics.auditStarted(config.auditIntervalMs)
              audit = startAudit({
                http,
                inventory,
                log,
                now,
                namespace: config.podNamespace,
                identity: config.podName,
                intervalMs: config.auditIntervalMs,
                onPass: (pass) => metrics.auditPass(pass),
                imageGc: config.imageGc,
                onLeader: (leader) => metrics.auditLeader(leader),
              })
            },
            () => undefined,
          )
        },
        stop: async () => {
          stopped = true
          await audit?.close()
        },
      })
    }
  }

  let listening: string | undefined
  let ops: FastifyInstance | undefined
  if (config.metricsPort !== 0) {
    const server = Fastify({ logger: false, keepAliveTimeout: KEEP_ALIVE_MS })
    ops = server
    lifecycle.add({
      name: 'ops',
      start: async () => {
        await server.register(opsApp, { metrics, ready: isReady })
        await server.listen({ port: config.metricsPort, host: config.host })
      },
      stop: () => server.close(),
    })
  }
  lifecycle.add({
    name: 'https',
    start: async () => {
      listening = await app.listen({ port: config.port, host: config.host })
      log.info({ url: listening }, `Server listening at ${listening}`)
    },
    stop: async () => {
      log.info({}, 'drained: closing listeners, finishing requests in flight')
      await app.close()
    },
  })
  let tlsWatcher: TlsWatcher | undefined
  lifecycle.add({
    name: 'tls',
    start: () => {
      tlsWatcher = watchTls({
        certPath: config.tlsCert,
        keyPath: config.tlsKey,
        current: { cert, key },
        onChange: (files) => {
          app.server.setSecureContext({ cert: files.cert, key: files.key, ...TLS_OPTIONS })
          servingCertificate(files.cert)
          log.info({ cert: config.tlsCert }, 'serving certificate reloaded')
        },
        onError: (err) => log.error({ err }, 'serving certificate not reloaded; keeping the current one'),
      })
    },
    stop: () => tlsWatcher?.close(),
  })
  ready = () => lifecycle.ready()
  await lifecycle.start()
  const address = listening ?? ''

  let closing: Promise<void> | undefined
  const shutdown = (): Promise<void> => {
    closing ??= (async () => {
      draining = true
      // From now on every response says Connection: close, so clients stop reusing their
      // connections while endpoints drain; at close there is then no idle kept-alive
      // connection that a client could be sending a request on just as it is shut.
      app.server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
        res.shouldKeepAlive = false
      })
      log.info({ delayMs: config.shutdownDelayMs }, 'shutting down: not ready, draining')
      await systemClock.sleep(config.shutdownDelayMs, new AbortController().signal)
      await lifecycle.stop()
    })()
    return closing
  }

  const result: RunningWebhook = { app, url: address, inventory, shutdown }
  if (ops !== undefined) result.ops = ops
  if (summary !== undefined) result.summary = summary
  return result
}
