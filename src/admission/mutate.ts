import { resolveMode } from '../decision/decide.js'
import { steeringFor, steerPod, type PodSteeringOutcome, type SteerSkip } from '../decision/steer.js'
import type { InventoryView } from '../inventory/inventory-index.js'
import type { Mode } from '../api/types.js'
import { DEFAULT_STEER_SETTINGS, type SteerSettings } from './pod-check.js'
import {
  allowed,
  errored,
  parseReview,
  patched,
  requestFields,
  toReview,
  unreadRequestFields,
  type AdmissionReviewReply,
  type RequestFields,
} from './review.js'

// POST /mutate: steering (opt-in). Registered for pods CREATE with failurePolicy Ignore:
// steering is a help, the validating webhook still guards, so anything odd here is
// answered "allowed, unchanged", and a malformed review with the usual 400.

export interface MutateContext {
  inventory: InventoryView
  /** The mode for namespaces without a `neverpull.dev/mode` label (off leaves them alone). */
  mode: Mode
  steer?: SteerSettings
  now: number
}

/** What one mutation review did, for the log line and the metrics. */
export interface MutationRecord extends RequestFields {
  /** steer: patched; allow: unchanged; invalid: malformed review; skip: not a pod create or not a steering namespace. */
  decision: 'steer' | 'allow' | 'invalid' | 'skip'
  outcome?: PodSteeringOutcome
  /** Why the pod was left alone, when it was. */
  reason?: SteerSkip
  /** |S| and |E|: nodes steered to, of the eligible ones. */
  nodes?: number
  eligible?: number
  error?: string
}

export interface MutationHandled {
  reply: AdmissionReviewReply
  record: MutationRecord
}

export function handleMutation(body: unknown, ctx: MutateContext): MutationHandled {
  const parsed = parseReview(body)
  if (!parsed.ok) {
    const record: MutationRecord = { ...unreadRequestFields(parsed.uid), decision: 'invalid', error: parsed.error }
    return { reply: toReview(parsed.version, errored(parsed.uid, 400, parsed.error)), record }
  }
  const { request, apiVersion } = parsed.review
  const namespace = request.namespace ?? ''
  const record: MutationRecord = { ...requestFields(request), decision: 'skip' }
  const unchanged = (): MutationHandled => ({ reply: toReview(apiVersion, allowed(request.uid)), record })
  const podCreate =
    request.operation === 'CREATE' &&
    request.kind.group === '' &&
    request.kind.kind === 'Pod' &&
    (request.subResource === undefined || request.subResource === '')
  if (!podCreate) return unchanged()
  const steer = ctx.steer ?? DEFAULT_STEER_SETTINGS
  if (!steeringFor(ctx.inventory, namespace, steer.global, resolveMode(ctx.inventory, namespace, ctx.mode)))
    return unchanged()

  const result = steerPod(ctx.inventory, request.object, steer, ctx.now)
  if (!result.ok) {
    // The validating webhook answers a malformed pod; steering just stays out of the way.
    record.decision = 'allow'
    record.error = result.error
    return unchanged()
  }
  const { outcome, target, patch } = result.steering
  record.outcome = outcome
  record.eligible = target.eligible
  record.nodes = target.count
  if (!target.steer) record.reason = target.reason
  if (patch.length === 0) {
    record.decision = 'allow'
    return unchanged()
  }
  record.decision = 'steer'
  return { reply: toReview(apiVersion, patched(request.uid, patch)), record }
}
