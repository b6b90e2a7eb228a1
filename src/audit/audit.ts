import { decide, isNever, unpinnedHolders, type Finding } from '../decision/decide.js'
import { findingLine, gcLine, pinCommand } from '../decision/messages.js'
import type { ImageGcPolicy } from '../api/image-gc.js'
import type { InventoryView } from '../inventory/inventory-index.js'
import { extractPodTemplate, type PodTemplateFacts } from '../workload/pod-template.js'

// Continuous audit, the pure part. Admission sees an object once; the kubelet's image
// garbage collector removes unused images later. A running container keeps its image in
// use, but its next restart needs it: a pod bound to a node that no longer has its Never
// image, or a workload whose image is gone from every eligible node, is at risk.

export const EVENT_REASON = 'NeverPullImageMissing'
/** The image is there, but the kubelet's image GC may delete it (issue 14). */
export const GC_EVENT_REASON = 'NeverPullImageGcRisk'
/** Event messages are cut by the apiserver at 1 KiB; stay under it. */
export const MAX_EVENT_MESSAGE = 1000

export interface AuditTarget {
  apiVersion: string
  kind: string
  namespace: string
  name: string
  uid: string
  object: unknown
}

export interface AtRisk {
  target: AuditTarget
  /** The event reason: EVENT_REASON (missing now) or GC_EVENT_REASON (may be deleted). */
  reason: string
  /** Stable for the same findings: a new event only when it changes. */
  fingerprint: string
  message: string
  findings: Finding[]
}

export function targetKey(t: Pick<AuditTarget, 'kind' | 'namespace' | 'name' | 'uid'>): string {
  return `${t.kind}/${t.namespace}/${t.name}/${t.uid}`
}

/** What is at risk in one object now, or null. Unknown (stale) data is never a finding. */
export function assess(view: InventoryView, target: AuditTarget, now: number, imageGc?: ImageGcPolicy): AtRisk | null {
  const template = neverTemplate(target)
  return template === null ? null : assessTemplate(view, target, template, now, imageGc)
}

/** The object's pod template when a container uses imagePullPolicy: Never, else null. */
export function neverTemplate(target: Pick<AuditTarget, 'kind' | 'object'>): PodTemplateFacts | null {
  const extracted = extractPodTemplate(target.kind, target.object)
  if (!extracted.ok || extracted.template === null) return null
  return extracted.template.containers.some(isNever) ? extracted.template : null
}

/** assess() for a template already extracted (the audit walks each object once). */
export function assessTemplate(
  view: InventoryView,
  target: AuditTarget,
  extracted: PodTemplateFacts,
  now: number,
  imageGc?: ImageGcPolicy,
): AtRisk | null {
  // A static pod's mirror is only warned about at admission; here it is as much at risk. So
  // is a workload scaled to zero or suspended: it runs nothing now, and fails once it does.
  const { idle, ...rest } = extracted
  const template: PodTemplateFacts = { ...rest, mirror: false }
  const subject = { kind: target.kind, namespace: target.namespace, name: target.name, operation: 'CREATE' }
  const decision = decide(view, {
    subject,
    template,
    mode: 'enforce',
    now,
    ...(imageGc === undefined ? {} : { imageGc }),
  })
  const findings = decision.findings.filter((f) => f.severity === 'deny')
  if (findings.length === 0) return gcAtRisk(view, target, template, idle, decision.findings, imageGc)
  const bound = target.kind === 'Pod' && template.placement.nodeName !== undefined
  const lines = findings.map((f) => findingLine(f, subject))
  const lead = bound
    ? `the image of ${findings.length === 1 ? 'a container' : `${findings.length} containers`} with imagePullPolicy: Never is gone from node ${template.placement.nodeName}; the next container restart fails with ErrImageNeverPull`
    : idle === 'scaled-to-zero'
      ? `scaled to zero, and its imagePullPolicy: Never image is not on the nodes it may run on; scaling it up creates pods that fail with ErrImageNeverPull`
      : idle === 'suspended'
        ? `suspended, and its imagePullPolicy: Never image is not on the nodes it may run on; resuming it creates pods that fail with ErrImageNeverPull`
        : idle === 'paused'
          ? `paused, and its imagePullPolicy: Never image is not on the nodes it may run on; resuming it creates pods that fail with ErrImageNeverPull`
          : `imagePullPolicy: Never image gone from the nodes it may run on; new pods fail with ErrImageNeverPull`
  let message = `${lead}: ${lines.join('; ')}`
  if (message.length > MAX_EVENT_MESSAGE) message = message.slice(0, MAX_EVENT_MESSAGE - 1) + '…'
  const fingerprint =
    (idle === undefined ? '' : `${idle}|`) +
    findings
      .map((f) => `${f.container.kind}:${f.container.name}:${f.container.image}:${f.reason}:${f.missing.count}`)
      .sort()
      .join('|')
  return { target, reason: EVENT_REASON, fingerprint, message, findings }
}

/**
 * The image is where it must be, but the kubelet's image GC may delete it: on nodes at or
 * above --image-gc-high-threshold where it is not pinned; and, for a workload that runs
 * nothing (scaled to zero, suspended), wherever it is unpinned once --image-maximum-gc-age
 * passes, since no container keeps it in use.
 */
function gcAtRisk(
  view: InventoryView,
  target: AuditTarget,
  template: PodTemplateFacts,
  idle: PodTemplateFacts['idle'],
  all: Finding[],
  imageGc: ImageGcPolicy | undefined,
): AtRisk | null {
  if (imageGc === undefined) return null
  const lines: string[] = []
  const keys: string[] = []
  const findings: Finding[] = []
  for (const f of all) {
    if (f.gcRisk !== undefined) {
      lines.push(gcLine(f))
      keys.push(`${f.container.name}:${f.container.image}:gc:${f.gcRisk.nodes.map((n) => n.node).join(',')}`)
      findings.push(f)
    } else if (idle !== undefined && imageGc.maximumAgeMs > 0 && f.reason === 'present') {
      const unpinned = unpinnedHolders(view, f.container.image, template.placement)
      if (unpinned.length === 0) continue
      const age = humanAge(imageGc.maximumAgeMs)
      lines.push(
        `container "${f.container.name}": image "${f.container.image}" is not pinned on ${unpinned.slice(0, 3).join(', ')}` +
          `${unpinned.length > 3 ? ` and ${unpinned.length - 3} more` : ''}: unused while ${idle === 'suspended' ? 'suspended' : 'scaled to zero'}, ` +
          `the kubelet deletes it after ${age} (--image-maximum-gc-age)`,
      )
      keys.push(`${f.container.name}:${f.container.image}:age`)
      findings.push(f)
    }
  }
  if (lines.length === 0) return null
  const fix = `pin it (${pinCommand('IMAGE')}), free space, or use imagePullPolicy: IfNotPresent with a registry`
  let message = `imagePullPolicy: Never image at risk from the kubelet's image garbage collection: ${lines.join('; ')}; ${fix}`
  if (message.length > MAX_EVENT_MESSAGE) message = message.slice(0, MAX_EVENT_MESSAGE - 1) + '…'
  return { target, reason: GC_EVENT_REASON, fingerprint: `gc|${keys.sort().join('|')}`, message, findings }
}

function humanAge(ms: number): string {
  const h = ms / 3_600_000
  if (h >= 48 && Number.isInteger(h / 24)) return `${h / 24} days`
  if (h >= 1) return `${Number.isInteger(h) ? h : h.toFixed(1)}h`
  return `${Math.round(ms / 60_000)}m`
}

/**
 * Remembers what was reported, so each object gets one event per finding until the
 * finding changes or clears: no event storms across audit passes.
 */
export class AuditLedger {
  private reported = new Map<string, string>()

  /** True when this finding is new for the object (report it). */
  shouldReport(risk: AtRisk): boolean {
    const key = targetKey(risk.target)
    if (this.reported.get(key) === risk.fingerprint) return false
    this.reported.set(key, risk.fingerprint)
    return true
  }

  /** After a full pass: forget objects that are fine now or gone, so a relapse reports again. */
  settle(atRisk: ReadonlySet<string>): void {
    for (const key of this.reported.keys()) if (!atRisk.has(key)) this.reported.delete(key)
  }

  get size(): number {
    return this.reported.size
  }
}
