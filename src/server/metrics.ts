import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { ReviewRecord } from '../admission/pod-check.js'
import type { MutationRecord } from '../admission/mutate.js'
import type { AuditPass } from '../audit/runner.js'
import { POD_TEMPLATE_KINDS } from '../workload/pod-template.js'
import type { InventoryView } from '../inventory/inventory-index.js'
import { bitsCount, bitsForEach } from '../util/node-set.js'

// Label values come from requests: only kinds this webhook knows become labels, so an odd
// client cannot grow the metrics without bound.
const KNOWN_KINDS: ReadonlySet<string> = new Set([
  ...POD_TEMPLATE_KINDS,
  'Pod/ephemeralcontainers',
  'Pod/status',
  'NodeImageSet',
  'NodeImageSet/status',
])

/** Why a request got no decision: a bug answered by the route's failure policy, or a body that is no review. */
export type AdmissionErrorReason = 'internal' | 'unreadable'

export interface Metrics {
  readonly registry: Registry
  admissionError(reason: AdmissionErrorReason): void
  observeReview(record: ReviewRecord, seconds: number): void
  /** A /mutate review: its time, and the pod if it was steered (dry runs create nothing and are not counted). */
  observeMutation(record: MutationRecord, seconds: number): void
  inventorySkipped(kind: string): void
  inventoryFieldSkipped(kind: string, field: string): void
  /** The audit loop started, re-checking every `intervalMs` while it leads. */
  auditStarted(intervalMs: number): void
  auditPass(pass: AuditPass): void
  auditLeader(leader: boolean): void
  /** The serving certificate now in use expires at `notAfterMs` (ms since the epoch). */
  servingCertificate(notAfterMs: number): void
}

export interface MetricsOptions {
  inventory: InventoryView
  now: () => number
  /** Process metrics (CPU, memory, event loop lag); off in tests that build many apps. */
  processMetrics?: boolean
}

interface TallyNode {
  n: number
  readonly next: Map<string, TallyNode>
}

function step(node: TallyNode, key: string): TallyNode {
  let next = node.next.get(key)
  if (next === undefined) node.next.set(key, (next = { n: 0, next: new Map() }))
  return next
}

/**
 * Counts kept in plain numbers on the request path and handed to prom-client when scraped:
 * prom-client validates and hashes the label set on every inc(), which cost more per
 * review than most of the decision. The totals only grow, so Prometheus sees counters.
 * One map per label, in the order of `names`: a key joined from the values cost a string
 * and its hash on every review (1 µs a review in the bench profile).
 */
class Tally<L extends string> {
  private readonly root: TallyNode = { n: 0, next: new Map() }

  constructor(private readonly names: readonly L[]) {}

  /** One more for these label values, in the order of `names` (the unused ones omitted). */
  add(a: string, b = '', c = ''): void {
    const depth = this.names.length
    let node = step(this.root, a)
    if (depth > 1) node = step(node, b)
    if (depth > 2) node = step(node, c)
    node.n++
  }

  into(counter: Counter<L>): void {
    counter.reset()
    const walk = (node: TallyNode, values: readonly string[]): void => {
      if (values.length === this.names.length) {
        const labels = Object.fromEntries(this.names.map((name, i) => [name, values[i]])) as Record<L, string>
        counter.inc(labels, node.n)
        return
      }
      for (const [key, next] of node.next) walk(next, [...values, key])
    }
    walk(this.root, [])
  }
}

/** prom-client's per-series state, which BucketHistogram fills when scraped. */
interface HistogramSeries {
  bucketValues: Record<string, number>
  sum: number
  count: number
}

/**
 * A histogram without labels whose record() is a bucket search and three additions.
 * prom-client's observe() builds a closure and a label object, hashes the labels and finds
 * the bucket by the bound as a string key: 1.3 µs a review in the bench profile, as much as
 * the rest of the metrics. The counts are handed to prom-client when scraped, so the
 * exposition is prom-client's own (test/server/metrics-histogram.test.ts compares the two
 * on the same values, and fails if a prom-client release changes the state read here).
 */
export class BucketHistogram extends Histogram {
  private readonly bounds: readonly number[]
  private readonly counts: Float64Array
  private sum = 0
  private count = 0

  constructor(config: { name: string; help: string; buckets: readonly number[]; registers: Registry[] }) {
    super({
      name: config.name,
      help: config.help,
      buckets: [...config.buckets],
      registers: config.registers,
      collect() {
        ;(this as BucketHistogram).publish()
      },
    })
    this.bounds = [...config.buckets].sort((a, b) => a - b)
    this.counts = new Float64Array(this.bounds.length)
  }

  record(value: number): void {
    if (!Number.isFinite(value)) return
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    if (i < bounds.length) this.counts[i] = (this.counts[i] ?? 0) + 1
    this.sum += value
    this.count++
  }

  private publish(): void {
    this.zero({})
    const series = (this as unknown as { hashMap: Record<string, HistogramSeries | undefined> }).hashMap['']
    if (series === undefined) throw new Error('prom-client Histogram: no series after zero(); its internals changed')
    this.bounds.forEach((bound, i) => {
      series.bucketValues[bound] = this.counts[i]!
    })
    series.sum = this.sum
    series.count = this.count
  }
}

function lazyGauge(registry: Registry, config: { name: string; help: string }): { set(value: number): void } {
  let gauge: Gauge | undefined
  return {
    set(value) {
      gauge ??= new Gauge({ ...config, registers: [registry] })
      gauge.set(value)
    },
  }
}

export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry()
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry, prefix: 'neverpull_' })
  const requestTally = new Tally(['kind', 'operation', 'decision'] as const)
  const findingTally = new Tally(['reason', 'severity', 'mode'] as const)
  const steeredTally = new Tally(['namespace'] as const)
  const denialTally = new Tally(['namespace', 'kind'] as const)
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
  // Denials by the object's namespace, to tell a broken rollout from one person's typo. Only
  // namespaces with a denial get a series; the ServiceMonitor honours this label (honorLabels).
  new Counter({
    name: 'neverpull_admission_denials_total',
    help: 'AdmissionReviews denied, by the namespace and kind of the object',
    labelNames: ['namespace', 'kind'] as const,
    registers: [registry],
    collect() {
      denialTally.into(this)
    },
  })
  const errors = new Counter({
    name: 'neverpull_admission_errors_total',
    help:
      'Requests answered without a decision: internal (a bug; pods are allowed with a warning), ' +
      'unreadable (not JSON, too large, wrong content type), invalid (JSON but not a well-formed AdmissionReview)',
    labelNames: ['reason'] as const,
    registers: [registry],
  })
  // Zero from the start, so rate() has a series to work on before the first error.
  for (const reason of ['internal', 'unreadable', 'invalid'] as const) errors.inc({ reason }, 0)
  // Up to 5 s: the apiserver gives up after the configuration's timeoutSeconds (3 s), and the
  // alert on p99 needs buckets around 1 s to say "getting close".
  const duration = new BucketHistogram({
    name: 'neverpull_admission_duration_seconds',
    help: 'Time from receiving an AdmissionReview to its decision, body parsing included (the request counter has the per-kind breakdown)',
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5],
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
  const gcRisk = new Gauge({
    name: 'neverpull_audit_gc_risk_objects',
    help:
      "Pods and workloads whose Never image is present but unpinned where the kubelet's image GC may delete it " +
      '(image filesystem at or above --image-gc-high-threshold, or idle past --image-maximum-gc-age), by kind, at the last audit pass',
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
  // Registered with their first value: an unlabelled gauge reads 0 from birth, and a 0 here
  // would be a certificate that expired in 1970 or an audit pass that never ended.
  const lastPass = lazyGauge(registry, {
    name: 'neverpull_audit_last_pass_timestamp_seconds',
    help: 'When this replica last finished an audit pass (seconds since the epoch); absent before its first',
  })
  const auditInterval = lazyGauge(registry, {
    name: 'neverpull_audit_interval_seconds',
    help: 'How often the audit leader re-checks running workloads (--audit-interval); absent when the audit is off',
  })
  const certificateExpiry = lazyGauge(registry, {
    name: 'neverpull_serving_certificate_expiration_timestamp_seconds',
    help: 'notAfter of the serving certificate this replica serves now (seconds since the epoch); follows reloads',
  })
  const inventory = options.inventory
  new Gauge({
    name: 'neverpull_inventory_stale_after_seconds',
    help: 'A node image list older than this is unknown and only warns (--stale-after)',
    registers: [registry],
    collect() {
      this.set(inventory.staleAfterMs / 1000)
    },
  })
  // Per node, for the nodes whose Node object the webhook holds: its Ready condition, and when
  // its image list was last observed (absent when there is no NodeImageSet or it was never
  // observed). A NodeImageSet without a Node is left out: nothing can be placed there.
  new Gauge({
    name: 'neverpull_inventory_node_ready',
    help: 'Nodes known to the webhook, 1 when their Ready condition is True',
    labelNames: ['node'] as const,
    registers: [registry],
    collect() {
      this.reset()
      bitsForEach(inventory.nodes(), (slot) => {
        this.set({ node: inventory.nameOf(slot) }, inventory.node(slot)?.ready === true ? 1 : 0)
      })
    },
  })
  new Gauge({
    name: 'neverpull_inventory_observed_timestamp_seconds',
    help: "When each node's image list was last observed by its agent (NodeImageSet status.observedTime, seconds since the epoch)",
    labelNames: ['node'] as const,
    registers: [registry],
    collect() {
      this.reset()
      bitsForEach(inventory.nodes(), (slot) => {
        const at = inventory.observedAt(slot)
        if (!Number.isNaN(at)) this.set({ node: inventory.nameOf(slot) }, at / 1000)
      })
    },
  })
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
      requestTally.add(kind, operation, decision)
      duration.record(seconds)
      if (decision === 'invalid') errors.inc({ reason: 'invalid' })
      else if (decision === 'deny') {
        const namespace = record.namespace
        denialTally.add(namespace, kind)
      }
      const mode = record.mode ?? ''
      for (const f of record.findings ?? []) {
        findingTally.add(f.reason, f.severity, mode)
      }
    },
    observeMutation(record, seconds) {
      duration.record(seconds)
      if (record.outcome !== 'steered' || record.dryRun) return
      const namespace = record.namespace
      steeredTally.add(namespace)
    },
    admissionError(reason) {
      errors.inc({ reason })
    },
    inventorySkipped(kind) {
      skipped.inc({ kind })
    },
    inventoryFieldSkipped(kind, field) {
      fieldsSkipped.inc({ kind, field })
    },
    auditStarted(intervalMs) {
      auditInterval.set(intervalMs / 1000)
      leader.set(0)
    },
    auditPass(pass) {
      atRisk.reset()
      for (const [kind, n] of Object.entries(pass.byKind)) atRisk.set({ kind }, n)
      gcRisk.reset()
      for (const [kind, n] of Object.entries(pass.gcRiskByKind ?? {})) gcRisk.set({ kind }, n)
      auditChecked.set(pass.checked)
      auditEvents.inc(pass.events)
      lastPass.set(options.now() / 1000)
    },
    auditLeader(isLeader) {
      leader.set(isLeader ? 1 : 0)
      // Only the leader's count is current: a former leader's would be summed in forever.
      if (!isLeader) {
        atRisk.reset()
        gcRisk.reset()
      }
    },
    servingCertificate(notAfterMs) {
      certificateExpiry.set(notAfterMs / 1000)
    },
  }
}
