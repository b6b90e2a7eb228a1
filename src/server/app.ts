import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { handleReview } from '../admission/handle.js'
import { errored, toReview, V1 } from '../admission/review.js'
import type { InventoryView } from '../inventory/index.js'
import type { Mode } from '../inventory/types.js'
import type { Metrics } from './metrics.js'

/**
 * The apiserver accepts request bodies up to 3 MiB, and an UPDATE review carries the object
 * twice (object and oldObject) plus the envelope: 7 MiB admits every review the apiserver
 * can send while refusing anything larger before it is parsed (Fastify's default is 1 MiB).
 */
export const MAX_REVIEW_BYTES = 7 * 1024 * 1024

export interface AppOptions {
  inventory: InventoryView
  mode: Mode
  metrics: Metrics
  /** True once the inventory has been loaded or fully synced. */
  ready: () => boolean
  now?: () => number
}

function reviewError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).send(toReview(V1, errored('', status, message)))
}

/** The webhook's routes. Never listens: the server entry does, tests use inject(). */
export async function webhookApp(app: FastifyInstance, options: AppOptions): Promise<void> {
  const now = options.now ?? Date.now
  // The apiserver only ever sends JSON; anything else is refused with 415, not half-parsed.
  app.removeContentTypeParser('text/plain')

  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const status = err.statusCode ?? 500
    if (status >= 500) {
      request.log.error({ err }, 'request failed')
      return reviewError(reply, 500, 'internal error in neverpull-guard; see its logs')
    }
    const messages: Record<string, string> = {
      FST_ERR_CTP_BODY_TOO_LARGE: `request body larger than ${MAX_REVIEW_BYTES} bytes`,
      FST_ERR_CTP_INVALID_MEDIA_TYPE: 'Content-Type must be application/json',
      FST_ERR_CTP_EMPTY_JSON_BODY: 'empty body: expected an AdmissionReview',
    }
    const message = messages[err.code] ?? (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError ? `body is not valid JSON: ${err.message}` : err.message)
    return reviewError(reply, status, message)
  })
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: 'Not Found', message: `no route ${request.method} ${request.url}; reviews go to POST /validate` })
  })

  app.post('/validate', { bodyLimit: MAX_REVIEW_BYTES }, async (request, reply) => {
    const started = process.hrtime.bigint()
    let handled
    try {
      handled = handleReview(request.body, { inventory: options.inventory, mode: options.mode, now: now() })
    } catch (err) {
      // A bug here must not block pods: unknown is a warning, never a denial.
      request.log.error({ err }, 'review failed')
      const uid = (request.body as { request?: { uid?: unknown } } | null)?.request?.uid
      const body = {
        apiVersion: V1,
        kind: 'AdmissionReview',
        response: {
          uid: typeof uid === 'string' ? uid : '',
          allowed: true,
          warnings: ['neverpull-guard could not check this object (internal error, see its logs); it was not denied'],
        },
      }
      return reply.send(body)
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    const { record, reply: review } = handled
    options.metrics.observeReview(record, seconds)
    const level = record.decision === 'invalid' ? 'warn' : record.decision === 'skip' ? 'debug' : 'info'
    request.log[level]({ admission: record, seconds }, `admission ${record.decision}`)
    return reply.send(review)
  })

  await opsApp(app, options)
}

export interface OpsOptions {
  metrics: Metrics
  ready: () => boolean
}

/** /healthz, /readyz and /metrics: on the webhook's HTTPS port and on the plain ops port. */
export async function opsApp(app: FastifyInstance, options: OpsOptions): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_, reply) => {
    if (options.ready()) return { status: 'ready' }
    return reply.code(503).send({ status: 'not ready', message: 'inventory not loaded or shutting down' })
  })
  app.get('/metrics', async (_, reply) => {
    reply.header('content-type', options.metrics.registry.contentType)
    return options.metrics.registry.metrics()
  })
}
