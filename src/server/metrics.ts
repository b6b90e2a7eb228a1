import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { ReviewRecord } from '../admission/handle.js'
import type { AuditPass } from '../audit/runner.js'
import { POD_TEMPLATE_KINDS } from '../workload/pod-template.js'
import type { InventoryView } from '../inventory/index.js'
import { bitsCount } from '../inventory/node-set.js'

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
  inventorySkipped(kind: string): void
  auditPass(pass: AuditPass): void
  auditLeader(leader: boolean): void
}

export interface MetricsOptions {
  inventory: InventoryView
  now: () => number
  /** Process metrics (CPU, memory, event loop lag); off in tests that build many apps. */
  processMetrics?: boolean
}

export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry()
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry, prefix: 'neverpull_' })
  const requests = new Counter({
    name: 'neverpull_admission_requests_total',
    help: 'AdmissionReviews answered, by object kind, operation and decision (allow, warn, deny, invalid, skip)',
    labelNames: ['kind', 'operation', 'decision'] as const,
    registers: [registry],
  })
  const findings = new Counter({
    name: 'neverpull_findings_total',
    help: 'Containers with imagePullPolicy: Never checked, by reason and by mode; audit counts would-be denials here',
    labelNames: ['reason', 'severity', 'mode'] as const,
    registers: [registry],
  })
  const duration = new Histogram({
    name: 'neverpull_admission_duration_seconds',
    help: 'Time to decide one AdmissionReview, body parsing excluded',
    labelNames: ['kind'] as const,
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
    registers: [registry],
  })
  const skipped = new Counter({
    name: 'neverpull_inventory_skipped_total',
    help: 'Malformed inventory objects skipped (the last good data for that node is kept)',
    labelNames: ['kind'] as const,
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
  // One child per label combination, looked up by a plain string: prom-client would
  // otherwise hash the label object on every request.
  const requestChildren = new Map<string, { inc(): void }>()
  const durationChildren = new Map<string, { observe(v: number): void }>()
  return {
    registry,
    observeReview(record, seconds) {
      const kind = KNOWN_KINDS.has(record.kind) ? record.kind : record.kind === '' ? 'unknown' : 'other'
      const operation = record.operation || 'unknown'
      const key = `${kind}\u0000${operation}\u0000${record.decision}`
      let counter = requestChildren.get(key)
      if (counter === undefined) requestChildren.set(key, (counter = requests.labels({ kind, operation, decision: record.decision })))
      counter.inc()
      let histogram = durationChildren.get(kind)
      if (histogram === undefined) durationChildren.set(kind, (histogram = duration.labels({ kind })))
      histogram.observe(seconds)
      for (const f of record.findings ?? []) findings.inc({ reason: f.reason, severity: f.severity, mode: record.mode ?? '' })
    },
    inventorySkipped(kind) {
      skipped.inc({ kind })
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
