import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { envelopeOf, toReview, type AdmissionResponse, type AdmissionReviewReply } from '../admission/review.js'
import type { Logger } from '../util/logger.js'

// One admission route, whatever it judges: decide, time it, count it, log one line, and
// answer with an AdmissionReview even when the handler throws (controller-runtime's
// webhook.go: recover, copy the uid, reply in the version received).

/**
 * The apiserver accepts request bodies up to 3 MiB, and an UPDATE review carries the object
 * twice (object and oldObject) plus the envelope: 7 MiB admits every review the apiserver
 * can send while refusing anything larger before it is parsed (Fastify's default is 1 MiB).
 */
export const MAX_REVIEW_BYTES = 7 * 1024 * 1024

const ARRIVAL = Symbol('neverpull.arrival')
type Timed = FastifyRequest & { [ARRIVAL]: number }

export type LineLevel = 'debug' | 'info' | 'warn'

/** What every route's record has: the rest is the route's own. */
export interface RouteRecord {
  decision: string
}

export interface AdmissionRoute<R extends RouteRecord> {
  /** `/validate`, `/validate-nodeimageset`, `/mutate`. */
  path: string
  /** The error line when the handler throws: `review failed`. */
  failure: string
  handle(body: unknown): { record: R; reply: AdmissionReviewReply }
  /** The response when the handler threw: the route's failure policy in its own words. */
  recover(uid: string): AdmissionResponse
  /** Counts the review; `seconds` runs from the request's arrival to the decision, body parsing included. */
  observe(record: R, seconds: number): void
  /** Counts a review the handler threw on (after the error line, before `recover` answers). */
  failed?(): void
  level(record: R): LineLevel
  /** The line's `admission` object: fields picked one by one, never the object or credentials. */
  describe(record: R): Record<string, unknown>
  /** After the line: once-only reports and the like. */
  after?(record: R): void
}

/**
 * `log` takes the error line when a handler throws; `lines` the one line per review (the same
 * logger, or one without redaction when every line's fields are picked one by one).
 */
export function admissionRoute<R extends RouteRecord>(
  app: FastifyInstance,
  route: AdmissionRoute<R>,
  log: Logger,
  lines: Logger = log,
): void {
  // When a review arrived, before its body was read and parsed: the duration is then what the
  // apiserver waits for (less the network), including time queued behind other work. A
  // request decorator, so every request has the field from its construction (a WeakMap
  // keyed by request cost 1.3 µs a review in the bench profile).
  if (!app.hasRequestDecorator(ARRIVAL)) app.decorateRequest(ARRIVAL, 0)
  const onRequest = (request: FastifyRequest, _reply: FastifyReply, done: () => void): void => {
    ;(request as Timed)[ARRIVAL] = performance.now()
    done()
  }
  app.post(route.path, { bodyLimit: MAX_REVIEW_BYTES, onRequest }, async (request, reply) => {
    const started = (request as Timed)[ARRIVAL] || performance.now()
    let handled
    try {
      handled = route.handle(request.body)
    } catch (err) {
      log.error({ err, path: route.path }, route.failure)
      route.failed?.()
      const { uid, version } = envelopeOf(request.body)
      return reply.send(toReview(version, route.recover(uid)))
    }
    const seconds = (performance.now() - started) / 1000
    const { record } = handled
    route.observe(record, seconds)
    const level = route.level(record)
    // Formatting a line costs more than most decisions: only for levels that are written.
    if (lines.isLevelEnabled?.(level) !== false)
      lines[level]({ admission: route.describe(record), seconds }, `admission ${record.decision}`)
    route.after?.(record)
    return reply.send(handled.reply)
  })
}
