import { decide, needsCheck, resolveMode, type Decision, type Subject } from '../decision/decide.js'
import { ANY_REGISTRY, type PullableRegistries } from '../api/registries.js'
import type { ImageGcPolicy } from '../api/image-gc.js'
import { denialMessage, warningsFor } from '../decision/messages.js'
import type { InventoryView } from '../inventory/inventory-index.js'
import { steeringFor, type SteerPolicy } from '../decision/steer.js'
import { DEFAULT_STEER_MAX_NODES, type Mode } from '../api/types.js'
import { carriesPodTemplate, extractPodTemplate } from '../workload/pod-template.js'
import {
  allowed,
  denied,
  errored,
  parseReview,
  requestFields,
  toReview,
  unreadRequestFields,
  type AdmissionRequest,
  type RequestFields,
  type AdmissionReviewReply,
} from './review.js'

export interface PodCheckContext {
  inventory: InventoryView
  /** The mode for namespaces without a `neverpull.dev/mode` label. */
  mode: Mode
  now: number
  /** Registries the nodes can pull from, for namespaces without the annotation; default `*`. */
  pullable?: PullableRegistries
  /** Steering (`--steer`, `--steer-max-nodes`); absent: only namespaces labelled `neverpull.dev/steer=true`, 100 nodes. */
  steer?: SteerSettings
  /**
   * Pods have not been through the apiserver's RuntimeClass admission (offline manifests):
   * merge their RuntimeClass like a template's. Admitted Pods arrive merged.
   */
  mergePods?: boolean
  /** The kubelets' image GC settings; no GC-risk warnings without them. */
  imageGc?: ImageGcPolicy
}

export interface SteerSettings extends SteerPolicy {
  /** `--steer`: every namespace not labelled `neverpull.dev/steer=false`. */
  global: boolean
}

export const DEFAULT_STEER_SETTINGS: SteerSettings = { global: false, maxNodes: DEFAULT_STEER_MAX_NODES }

/** What one review did, for the log line and the metrics. */
export interface ReviewRecord extends RequestFields {
  /** allow | warn | deny as answered; `invalid` for a malformed review; `skip` when not checked. */
  decision: 'allow' | 'warn' | 'deny' | 'invalid' | 'skip'
  mode?: Mode
  /** What the checks found before the mode applied (audit logs a would-be denial). */
  outcome?: Decision['outcome']
  findings?: Array<{ container: string; image: string; reason: string; severity: string }>
  error?: string
}

export interface Handled {
  reply: AdmissionReviewReply
  record: ReviewRecord
}

function subjectOf(r: AdmissionRequest): Subject {
  return { kind: r.kind.kind, namespace: r.namespace ?? '', name: r.name ?? '', operation: r.operation }
}

/** The record of a review that could not be parsed. */
export function invalidRecord(uid: string, error: string): ReviewRecord {
  return { ...unreadRequestFields(uid), decision: 'invalid', error }
}

/**
 * The fields every admission log line carries, from the request, and those a check fills in
 * later, undefined, in one literal: a spread copy that then gained four properties one by one
 * grew its property store each time (a fifth of checkPodReview on a warned Pod).
 */
export function baseRecord(r: AdmissionRequest): ReviewRecord {
  const f = requestFields(r)
  return {
    uid: f.uid,
    kind: f.kind,
    namespace: f.namespace,
    name: f.name,
    operation: f.operation,
    user: f.user,
    dryRun: f.dryRun,
    decision: 'skip',
    mode: undefined,
    outcome: undefined,
    findings: undefined,
    error: undefined,
  }
}

/**
 * One AdmissionReview in, one out. Never throws: a malformed review is answered with
 * allowed=false and code 400, anything this webhook does not check is allowed untouched.
 */
export function checkPodReview(body: unknown, ctx: PodCheckContext): Handled {
  const parsed = parseReview(body)
  if (!parsed.ok) {
    return {
      reply: toReview(parsed.version, errored(parsed.uid, 400, parsed.error)),
      record: invalidRecord(parsed.uid, parsed.error),
    }
  }
  const { request, apiVersion } = parsed.review
  const record = baseRecord(request)
  const reply = (response: ReturnType<typeof allowed>): Handled => ({ reply: toReview(apiVersion, response), record })

  const checked =
    (request.operation === 'CREATE' || request.operation === 'UPDATE') &&
    carriesPodTemplate(request.kind.group, request.kind.kind) &&
    (request.subResource === undefined || request.subResource === '' || request.subResource === 'ephemeralcontainers')
  if (!checked) return reply(allowed(request.uid))

  const mode = resolveMode(ctx.inventory, request.namespace ?? '', ctx.mode)
  record.mode = mode
  if (mode === 'off') return reply(allowed(request.uid))

  const pullable = ctx.inventory.namespacePullableRegistries(request.namespace ?? '') ?? ctx.pullable ?? ANY_REGISTRY
  const current = extractPodTemplate(
    request.kind.kind,
    request.object,
    pullable.any ? undefined : { checked: (c) => needsCheck(pullable, c) },
  )
  if (!current.ok) {
    record.decision = 'invalid'
    record.error = current.error
    return reply(errored(request.uid, 400, `malformed ${request.kind.kind}: ${current.error}`))
  }
  if (current.template === null) return reply(allowed(request.uid))

  let previous = null
  if (request.operation === 'UPDATE') {
    const old = extractPodTemplate(request.kind.kind, request.oldObject)
    previous = old.ok ? old.template : null
  }

  const subject = subjectOf(request)
  const steer = ctx.steer ?? DEFAULT_STEER_SETTINGS
  const decision = decide(ctx.inventory, {
    subject,
    template: current.template,
    previous: request.operation === 'UPDATE' ? previous : undefined,
    mode,
    now: ctx.now,
    pullable,
    steer: steeringFor(ctx.inventory, subject.namespace, steer.global, mode) ? steer : undefined,
    mergePods: ctx.mergePods === true,
    imageGc: ctx.imageGc,
  })
  record.decision = decision.verdict
  record.outcome = decision.outcome
  record.findings = decision.findings.map((f) => ({
    container: f.container.name,
    image: f.container.image,
    reason: f.reason,
    severity: f.severity,
  }))
  const warnings = warningsFor(decision, subject)
  if (decision.verdict === 'deny') return reply(denied(request.uid, denialMessage(decision, subject), warnings))
  return reply(allowed(request.uid, warnings))
}
