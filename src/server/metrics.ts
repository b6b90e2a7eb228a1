import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { ReviewRecord } from '../admission/handle.js'
import type { MutationRecord } from '../admission/mutate.js'
import type { AuditPass } from '../audit/runner.js'
import { POD_TEMPLATE_KINDS } from '../workload/pod-template.js'
import type { InventoryView } from '../inventory/index.js'
import { bitsCount } from '../util/node-set.js'

// Label values come from requests: only kinds this webhook knows become labels, so an odd
// client cannot grow the metrics without bound.
const KNOWN_KINDS: ReadonlySet<string> = new Set([
  ...POD_TEMPLATE_KINDS,
  'Pod/ephemeralcontainers',
  'Pod/status',
  'NodeImageSet',
  'NodeImageSet/status',
])

export interface Metrics {
  readonly registry: Registry
  observeReview(record: ReviewRecord, seconds: number): void
  /** A /mutate review: its time, and the pod if it was steered (dry runs create nothing and are not counted). */
  observeMutation(record: MutationRecord, seconds: number): void
  inventorySkipped(kind: string): void
  inventoryFieldSkipped(kind: string, field: string): void
  auditPass(pass: AuditPass): void
  auditLeader(leader: boolean): void
}

export interface MetricsOptions {
  inventory: InventoryView
  now: () => number
  /** Process metrics (CPU, memory, event loop lag); off in tests that build many apps. */
  processMetrics?: boolean
}

/**
 * Counts kept in plain numbers on the request path and handed to prom-client when scraped:
 * prom-client validates and hashes the label set on every inc(), which cost more per
 * review than most of the decision. The totals only grow, so Prometheus sees counters.
 */
class Tally<L extends string> {
  private readonly counts = new Map<string, { labels: Record<L, string>; n: number }>()

  add(key: string, labels: () => Record<L, string>, n = 1): void {
    const entry = this.counts.get(key)
    if (entry !== undefined) entry.n += n
    else this.counts.set(key, { labels: labels(), n })
  }

  into(counter: Counter<L>): void {
    counter.reset()
    for (const { labels, n } of this.counts.values()) counter.inc(labels, n)
  }
}

export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry()
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry, prefix: 'neverpull_' })
  const requestTally = new Tally<'kind' | 'operation' | 'decision'>()
  const findingTally = new Tally<'reason' | 'severity' | 'mode'>()
  const steeredTally = new Tally<'namespace'>()
  new Counter({
    name: 'neverpull_admission_requests_total',
    help: 'AdmissionReviews answered, by object kind, operation and decision (allow, warn, deny, invalid, skip)',
    labelNames: ['kind', 'operation', 'decision'] as const,
    registers: [registry],
    collect() {
      requestTally.into(this)
    },
  })
  new Counter({
    name: 'neverpull_findings_total',
    help: 'Containers with imagePullPolicy: Never checked, by reason and by mode; audit counts would-be denials here',
    labelNames: ['reason', 'severity', 'mode'] as const,
    registers: [registry],
    collect() {
      findingTally.into(this)
    },
  })
  new Counter({
    name: 'neverpull_steered_pods_total',
    help: 'Pods limited by the mutating webhook to the nodes that hold their imagePullPolicy: Never images, by namespace',
    labelNames: ['namespace'] as const,
    registers: [registry],
    collect() {
      steeredTally.into(this)
    },
  })
  const duration = new Histogram({
    name: 'neverpull_admission_duration_seconds',
    help: 'Time to decide one AdmissionReview, body parsing excluded (the request counter has the per-kind breakdown)',
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
    registers: [registry],
  })
  const skipped = new Counter({
    name: 'neverpull_inventory_skipped_total',
    help: 'Malformed inventory objects skipped (the last good data for that node is kept)',
    labelNames: ['kind'] as const,
    registers: [registry],
  })
  const fieldsSkipped = new Counter({
    name: 'neverpull_inventory_fields_skipped_total',
    help: 'Fields of inventory objects that could not be read and were left out, by kind and field (the rest of the object is used)',
    labelNames: ['kind', 'field'] as const,
    registers: [registry],
  })
  const atRisk = new Gauge({
    name: 'neverpull_audit_at_risk_objects',
    help: 'Running Pods and workloads whose Never image is gone from their node(s), by kind, at the last audit pass',
    labelNames: ['kind'] as const,
    registers: [registry],
  })
  const auditEvents = new Counter({
    name: 'neverpull_audit_events_total',
    help: 'NeverPullImageMissing events recorded by the audit',
    registers: [registry],
  })
  const auditChecked = new Gauge({
    name: 'neverpull_audit_checked_objects',
    help: 'Objects with a Never container checked at the last audit pass',
    registers: [registry],
  })
  const leader = new Gauge({
    name: 'neverpull_audit_leader',
    help: '1 while this replica holds the audit lease',
    registers: [registry],
  })
  const inventory = options.inventory
  new Gauge({
    name: 'neverpull_inventory_nodes',
    help: 'Nodes known to the webhook',
    registers: [registry],
    collect() {
      this.set(inventory.nodeCount)
    },
  })
  new Gauge({
    name: 'neverpull_inventory_image_sets',
    help: 'NodeImageSets known to the webhook',
    registers: [registry],
    collect() {
      this.set(inventory.imageSetCount)
    },
  })
  new Gauge({
    name: 'neverpull_inventory_fresh_nodes',
    help: 'Nodes whose image list was observed within the staleness window',
    registers: [registry],
    collect() {
      this.set(bitsCount(inventory.freshNodes(options.now())))
    },
  })
  return {
    registry,
    observeReview(record, seconds) {
      const kind = KNOWN_KINDS.has(record.kind) ? record.kind : record.kind === '' ? 'unknown' : 'other'
      const operation = record.operation || 'unknown'
      const decision = record.decision
      requestTally.add(`${kind}\u0000${operation}\u0000${decision}`, () => ({ kind, operation, decision }))
      duration.observe(seconds)
      const mode = record.mode ?? ''
      for (const f of record.findings ?? []) {
        findingTally.add(`${f.reason}\u0000${f.severity}\u0000${mode}`, () => ({ reason: f.reason, severity: f.severity, mode }))
      }
    },
    observeMutation(record, seconds) {
      duration.observe(seconds)
      if (record.outcome !== 'steered' || record.dryRun) return
      const namespace = record.namespace
      steeredTally.add(namespace, () => ({ namespace }))
    },
    inventorySkipped(kind) {
      skipped.inc({ kind })
    },
    inventoryFieldSkipped(kind, field) {
      fieldsSkipped.inc({ kind, field })
    },
    auditPass(pass) {
      atRisk.reset()
      for (const [kind, n] of Object.entries(pass.byKind)) atRisk.set({ kind }, n)
      auditChecked.set(pass.checked)
      auditEvents.inc(pass.events)
    },
    auditLeader(isLeader) {
      leader.set(isLeader ? 1 : 0)
    },
  }
}
