import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Counter } from 'prom-client'
import { checkPodReview, type PodCheckContext, type ReviewRecord, type SteerSettings } from '../admission/pod-check.js'
import { handleMutation, type MutationRecord } from '../admission/mutate.js'
import {
  DEFAULT_ADMIN_GROUPS,
  guardNodeImageSetWrite,
  type NodeImageSetPolicy,
  type NodeImageSetReason,
  type NodeImageSetRecord,
} from '../admission/nodeimageset-guard.js'
import { allowed, errored, toReview, V1, type RequestFields } from '../admission/review.js'
import type { InventoryView } from '../inventory/inventory-index.js'
import { DEFAULT_AGENT_SERVICE_ACCOUNT, type Mode, type ServiceAccountRef } from '../api/types.js'
import type { Metrics } from './metrics.js'
import type { PullableRegistries } from '../api/registries.js'
import type { ImageGcPolicy } from '../api/image-gc.js'
import { silentLogger, type Logger } from '../util/logger.js'
import { admissionRoute, MAX_REVIEW_BYTES } from './route.js'

export { MAX_REVIEW_BYTES }

export interface AppOptions {
  inventory: InventoryView
  mode: Mode
  metrics: Metrics
  /** True once the inventory has been loaded or fully synced. */
  ready: () => boolean
  now?: () => number
  /** The agent's ServiceAccount: the writer of NodeImageSets (`--agent-service-account`). */
  agentServiceAccount?: ServiceAccountRef
  /** `--steer` and `--steer-max-nodes`; absent: only labelled namespaces, 100 nodes. */
  steer?: SteerSettings
  /** Where admission lines and errors go; silent when absent (tests). */
  log?: Logger
  /**
   * The one line per review, when it should not go to `log` as it is: server.ts passes a
   * child of `log` without its redaction (see there).
   */
  reviewLog?: Logger
  /** `--pullable-registries`; any registry when absent. */
  pullable?: PullableRegistries
  /** The kubelets' image GC settings; the GC-risk warnings are off when absent. */
  imageGc?: ImageGcPolicy
}

function reviewError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).send(toReview(V1, errored('', status, message)))
}

/** The fields of the request and the decision, first on every route's log line. */
function requestLogFields(record: RequestFields & { decision: string }): Record<string, unknown> {
  return {
    uid: record.uid,
    kind: record.kind,
    namespace: record.namespace,
    name: record.name,
    operation: record.operation,
    user: record.user,
    dryRun: record.dryRun,
    decision: record.decision,
  }
}

/**
 * What a review's log line carries: the README's fields, picked one by one, so that nothing
 * from the object or the user's credentials (userInfo.extra, env values, annotations) can
 * reach the logs by way of a field added to the record later.
 */
export function logFields(record: ReviewRecord | NodeImageSetRecord): Record<string, unknown> {
  const fields = requestLogFields(record)
  if (record.mode !== undefined) fields['mode'] = record.mode
  if (record.outcome !== undefined) fields['outcome'] = record.outcome
  if (record.findings !== undefined) {
    fields['findings'] = record.findings.map((f) => ({
      container: f.container,
      image: f.image,
      reason: f.reason,
      severity: f.severity,
    }))
  }
  if ('reason' in record) fields['reason'] = record.reason
  if ('writerNode' in record && record.writerNode !== undefined) fields['writerNode'] = record.writerNode
  if (record.error !== undefined) fields['error'] = record.error
  return fields
}

/** A mutation's log line: the request's fields as for the other routes, and what steering did. */
export function mutationFields(record: MutationRecord): Record<string, unknown> {
  const fields = requestLogFields(record)
  if (record.outcome !== undefined) fields['outcome'] = record.outcome
  if (record.reason !== undefined) fields['reason'] = record.reason
  if (record.nodes !== undefined) fields['nodes'] = record.nodes
  if (record.eligible !== undefined) fields['eligible'] = record.eligible
  if (record.error !== undefined) fields['error'] = record.error
  return fields
}

const NODE_IMAGE_SET_REVIEWS = 'neverpull_nodeimageset_reviews_total'

function nodeImageSetCounter(options: AppOptions): Counter<'reason'> {
  const existing = options.metrics.registry.getSingleMetric(NODE_IMAGE_SET_REVIEWS)
  if (existing !== undefined) return existing as Counter<'reason'>
  return new Counter({
    name: NODE_IMAGE_SET_REVIEWS,
    help:
      'NodeImageSet writes judged, by reason: agent-own-node, agent-unbound (token names no node, before 1.30), admin, ' +
      'metadata-only, not-checked, other-node, not-allowed, malformed, invalid-review',
    labelNames: ['reason'] as const,
    registers: [options.metrics.registry],
  })
}

/** Allowed agent writes are routine (every changed list, every heartbeat); the rest is worth a line. */
const NODE_IMAGE_SET_LOG_LEVEL: Record<NodeImageSetReason, 'debug' | 'info' | 'warn'> = {
  'agent-own-node': 'debug',
  'agent-unbound': 'debug',
  'metadata-only': 'debug',
  'not-checked': 'debug',
  admin: 'info',
  'other-node': 'warn',
  'not-allowed': 'warn',
  malformed: 'warn',
  'invalid-review': 'warn',
}

/** The webhook's routes. Never listens: the server entry does, tests use inject(). */
export async function webhookApp(app: FastifyInstance, options: AppOptions): Promise<void> {
  const now = options.now ?? Date.now
  const log = options.log ?? silentLogger
  const lines = options.reviewLog ?? log
  const policy: NodeImageSetPolicy = {
    agentServiceAccount: options.agentServiceAccount ?? DEFAULT_AGENT_SERVICE_ACCOUNT,
    adminGroups: DEFAULT_ADMIN_GROUPS,
  }
  // One object literal of one shape per review: spreading optional parts into it cost
  // 3.7 µs a request (bench profile), more than deciding an allowed Pod.
  const { inventory, mode, pullable, imageGc, steer } = options
  const context = (): PodCheckContext => ({ inventory, mode, now: now(), pullable, steer, imageGc })
  const nodeImageSetReviews = nodeImageSetCounter(options)
  let unboundReported = false
  // The apiserver only ever sends JSON; anything else is refused with 415, not half-parsed.
  app.removeContentTypeParser('text/plain')

  app.setErrorHandler((err: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
    const status = err.statusCode ?? 500
    if (status >= 500) {
      log.error({ err }, 'request failed')
      options.metrics.admissionError('internal')
      return reviewError(reply, 500, 'internal error in neverpull-guard; see its logs')
    }
    options.metrics.admissionError('unreadable')
    const messages: Record<string, string> = {
      FST_ERR_CTP_BODY_TOO_LARGE: `request body larger than ${MAX_REVIEW_BYTES} bytes`,
      FST_ERR_CTP_INVALID_MEDIA_TYPE: 'Content-Type must be application/json',
      FST_ERR_CTP_EMPTY_JSON_BODY: 'empty body: expected an AdmissionReview',
    }
    const message =
      messages[err.code] ??
      (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError
        ? `body is not valid JSON: ${err.message}`
        : err.message)
    return reviewError(reply, status, message)
  })
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({
      error: 'Not Found',
      message: `no route ${request.method} ${request.url}; reviews go to POST /validate, POST /validate-nodeimageset and POST /mutate`,
    })
  })

  admissionRoute(
    app,
    {
      path: '/validate',
      failure: 'review failed',
      handle: (body) => checkPodReview(body, context()),
      // A bug here must not block pods: unknown is a warning, never a denial.
      recover: (uid) =>
        allowed(uid, ['neverpull-guard could not check this object (internal error, see its logs); it was not denied']),
      failed: () => options.metrics.admissionError('internal'),
      observe: (record, seconds) => options.metrics.observeReview(record, seconds),
      // Every admission that found something is logged at info; the common case (no Never
      // container, or every image where it must be) only at debug: it is counted in the
      // metrics, and an info line per pod create costs a busy cluster more than the check.
      level: (record) => {
        if (record.decision === 'invalid') return 'warn'
        const routine = record.decision === 'skip' || (record.decision === 'allow' && record.outcome === 'allow')
        return routine ? 'debug' : 'info'
      },
      describe: (record) => logFields(record),
    },
    log,
    lines,
  )

  // Who may write the inventory. Fails closed (like the webhook's failurePolicy): a refused
  // agent write is retried and only delays freshness, a forged one misleads every decision.
  admissionRoute(
    app,
    {
      path: '/validate-nodeimageset',
      failure: 'NodeImageSet review failed',
      handle: (body) => guardNodeImageSetWrite(body, policy),
      recover: (uid) => errored(uid, 500, 'internal error in neverpull-guard; see its logs'),
      failed: () => options.metrics.admissionError('internal'),
      observe: (record, seconds) => {
        options.metrics.observeReview(record, seconds)
        nodeImageSetReviews.inc({ reason: record.reason })
      },
      level: (record) => NODE_IMAGE_SET_LOG_LEVEL[record.reason],
      describe: (record) => logFields(record),
      after: (record) => {
        if (record.reason !== 'agent-unbound' || unboundReported) return
        unboundReported = true
        log.info(
          { user: record.user, name: record.name },
          "the agent's token names no node (Kubernetes before 1.30): any agent may write any node's NodeImageSet; " +
            'see docs/SECURITY.md. Counted in neverpull_nodeimageset_reviews_total{reason="agent-unbound"}',
        )
      },
    },
    log,
    lines,
  )

  // Steering (opt-in): registered with failurePolicy Ignore, so a failure here leaves the
  // pod as it was and the validating webhook still judges it.
  admissionRoute(
    app,
    {
      path: '/mutate',
      failure: 'mutation review failed',
      handle: (body) => handleMutation(body, context()),
      recover: (uid) => allowed(uid),
      failed: () => options.metrics.admissionError('internal'),
      observe: (record, seconds) => options.metrics.observeMutation(record, seconds),
      // One line per pod steered (or changed on a reinvocation); the many left alone at debug.
      level: (record) => (record.decision === 'invalid' ? 'warn' : record.decision === 'steer' ? 'info' : 'debug'),
      describe: mutationFields,
    },
    log,
    lines,
  )

  await opsApp(app, options)
}

export interface OpsOptions {
  metrics: Metrics
  ready: () => boolean
}

/** /healthz, /readyz and /metrics: on the webhook's HTTPS port and on the plain ops port. */
export function opsApp(app: FastifyInstance, options: OpsOptions): Promise<void> {
  app.get('/healthz', () => ({ status: 'ok' }))
  app.get('/readyz', async (_, reply) => {
    if (options.ready()) return { status: 'ready' }
    return reply.code(503).send({ status: 'not ready', message: 'inventory not loaded or shutting down' })
  })
  app.get('/metrics', async (_, reply) => {
    reply.header('content-type', options.metrics.registry.contentType)
    return options.metrics.registry.metrics()
  })
  return Promise.resolve()
}
