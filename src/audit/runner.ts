import { randomBytes } from 'node:crypto'
import { kubeTime } from '../api/time.js'
import { createEvent, listPages, type ListPage } from '../kube/api.js'
import { ApiStatusError } from '../kube/status.js'
import type { KubeHttp } from '../kube/http.js'
import type { InventoryIndex } from '../inventory/inventory-index.js'
import {
  assessTemplate,
  AuditLedger,
  neverTemplate,
  GC_EVENT_REASON,
  targetKey,
  type AtRisk,
  type AuditTarget,
} from './audit.js'
import type { ImageGcPolicy } from '../api/image-gc.js'
import { LeaseElector } from './lease.js'
import type { Logger } from '../util/logger.js'

// Continuous audit, the I/O part: while this replica holds the Lease, re-evaluate existing
// Pods and workloads that use Never, every interval and soon after the inventory changes,
// and report what is newly at risk as one Warning event per object and finding.

export interface AuditPass {
  checked: number
  atRisk: number
  events: number
  byKind: Record<string, number>
  /** Of atRisk: those whose image is there but may be deleted by the kubelet's image GC, by kind. */
  gcRiskByKind?: Record<string, number>
}

export interface AuditOptions {
  /** The API server (src/kube: in-cluster or a kubeconfig). */
  http: KubeHttp
  inventory: InventoryIndex
  log: Logger
  now?: () => number
  /** Namespace of the Lease (the webhook's own). */
  namespace: string
  identity: string
  leaseName?: string
  intervalMs: number
  leaseDurationMs?: number
  /** Least time between two passes caused by inventory changes. */
  minGapMs?: number
  pageSize?: number
  onPass?: (pass: AuditPass) => void
  /** The kubelets' image GC settings: also report Never images the GC may delete. */
  imageGc?: ImageGcPolicy
  onLeader?: (leader: boolean) => void
}

export interface Audit {
  /** One full pass now, leader or not (tests, and the first pass after winning the lease). */
  runOnce(): Promise<AuditPass>
  isLeader(): boolean
  close(): Promise<void>
}

interface Source {
  kind: string
  apiVersion: string
  /** Collection path across all namespaces, listed raw, page by page. */
  path: string
  /** Where an older apiserver serves the kind instead (tried after a 404). */
  older?: { apiVersion: string; path: string }
  /** Objects owned by another checked workload are reported there instead. */
  skipOwned?: string
}

function meta(obj: unknown): {
  name: string
  namespace: string
  uid: string
  owners: Array<{ kind?: string; controller?: boolean }>
  phase?: string
} {
  const o = obj as {
    metadata?: {
      name?: string
      namespace?: string
      uid?: string
      ownerReferences?: Array<{ kind?: string; controller?: boolean }>
    }
    status?: { phase?: string }
  }
  const m: ReturnType<typeof meta> = {
    name: o.metadata?.name ?? '',
    namespace: o.metadata?.namespace ?? '',
    uid: o.metadata?.uid ?? '',
    owners: o.metadata?.ownerReferences ?? [],
  }
  if (o.status?.phase !== undefined) m.phase = o.status.phase
  return m
}

export function startAudit(options: AuditOptions): Audit {
  const now = options.now ?? Date.now
  const http = options.http
  const elector = new LeaseElector({
    http,
    namespace: options.namespace,
    name: options.leaseName ?? 'neverpull-guard-audit',
    identity: options.identity,
    durationMs: options.leaseDurationMs ?? 15_000,
  })
  const ledger = new AuditLedger()
  const pageSize = options.pageSize ?? 500
  const sources: Source[] = [
    { kind: 'Pod', apiVersion: 'v1', path: '/api/v1/pods' },
    { kind: 'Deployment', apiVersion: 'apps/v1', path: '/apis/apps/v1/deployments' },
    { kind: 'StatefulSet', apiVersion: 'apps/v1', path: '/apis/apps/v1/statefulsets' },
    { kind: 'DaemonSet', apiVersion: 'apps/v1', path: '/apis/apps/v1/daemonsets' },
    { kind: 'ReplicaSet', apiVersion: 'apps/v1', path: '/apis/apps/v1/replicasets', skipOwned: 'Deployment' },
    { kind: 'ReplicationController', apiVersion: 'v1', path: '/api/v1/replicationcontrollers' },
    { kind: 'Job', apiVersion: 'batch/v1', path: '/apis/batch/v1/jobs', skipOwned: 'CronJob' },
    // CronJob is batch/v1 from 1.21, batch/v1beta1 before (1.19, 1.20).
    {
      kind: 'CronJob',
      apiVersion: 'batch/v1',
      path: '/apis/batch/v1/cronjobs',
      older: { apiVersion: 'batch/v1beta1', path: '/apis/batch/v1beta1/cronjobs' },
    },
  ]

  async function emit(risk: AtRisk): Promise<void> {
    const t = risk.target
    const at = kubeTime(now())
    await createEvent(http, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${t.name}.${randomBytes(8).toString('hex')}`, namespace: t.namespace },
      involvedObject: { apiVersion: t.apiVersion, kind: t.kind, name: t.name, namespace: t.namespace, uid: t.uid },
      reason: risk.reason,
      message: risk.message,
      type: 'Warning',
      source: { component: 'neverpull-guard' },
      reportingComponent: 'neverpull.dev/audit',
      reportingInstance: options.identity,
      firstTimestamp: at,
      lastTimestamp: at,
      count: 1,
    })
  }

  /** The source's pages; on a 404 before the first page, its older group version's. */
  async function* pagesOf(source: Source): AsyncGenerator<{ page: ListPage; apiVersion: string }> {
    let first = true
    try {
      for await (const page of listPages(http, source.path, pageSize)) {
        first = false
        yield { page, apiVersion: source.apiVersion }
      }
    } catch (err) {
      const older = source.older
      if (!first || older === undefined || !(err instanceof ApiStatusError) || err.code !== 404) throw err
      for await (const page of listPages(http, older.path, pageSize)) yield { page, apiVersion: older.apiVersion }
    }
  }

  async function runOnce(): Promise<AuditPass> {
    const gcRiskByKind: Record<string, number> = {}
    const pass: AuditPass = { checked: 0, atRisk: 0, events: 0, byKind: {}, gcRiskByKind }
    const seen = new Set<string>()
    const at = now()
    for (const source of sources) {
      for await (const { page, apiVersion } of pagesOf(source)) {
        for (const item of page.items) {
          const m = meta(item)
          if (
            source.skipOwned !== undefined &&
            m.owners.some((o) => o.controller === true && o.kind === source.skipOwned)
          )
            continue
          if (m.phase === 'Succeeded' || m.phase === 'Failed') continue
          const target: AuditTarget = {
            apiVersion,
            kind: source.kind,
            namespace: m.namespace,
            name: m.name,
            uid: m.uid,
            object: item,
          }
          // Most objects have no Never container: one walk of the spec finds out.
          const template = neverTemplate(target)
          if (template === null) continue
          pass.checked++
          const risk = assessTemplate(options.inventory, target, template, at, options.imageGc)
          if (risk === null) continue
          seen.add(targetKey(target))
          pass.atRisk++
          pass.byKind[source.kind] = (pass.byKind[source.kind] ?? 0) + 1
          if (risk.reason === GC_EVENT_REASON) gcRiskByKind[source.kind] = (gcRiskByKind[source.kind] ?? 0) + 1
          if (!ledger.shouldReport(risk)) continue
          try {
            await emit(risk)
            pass.events++
            options.log.warn(
              { audit: { kind: target.kind, namespace: target.namespace, name: target.name, reason: risk.reason } },
              risk.message,
            )
          } catch (err) {
            options.log.error(
              { err, kind: target.kind, namespace: target.namespace, name: target.name },
              'audit event not recorded',
            )
          }
        }
      }
    }
    ledger.settle(seen)
    options.onPass?.(pass)
    options.log.info({ audit: pass }, 'audit pass done')
    return pass
  }

  let closed = false
  let timer: NodeJS.Timeout | undefined
  let running: Promise<unknown> | undefined
  let lastPass = Number.NEGATIVE_INFINITY
  let lastGeneration = -1
  const leaseMs = options.leaseDurationMs ?? 15_000
  const minGap = options.minGapMs ?? 10_000

  async function loop(): Promise<void> {
    if (closed) return
    try {
      const wasLeader = elector.isLeader()
      const leader = await elector.tick(now())
      if (leader !== wasLeader) {
        options.log.info({ identity: options.identity, leader }, leader ? 'audit lease acquired' : 'audit lease lost')
        options.onLeader?.(leader)
      }
      const t = now()
      const changed = options.inventory.generation !== lastGeneration && t - lastPass >= minGap
      if (leader && (t - lastPass >= options.intervalMs || changed)) {
        lastGeneration = options.inventory.generation
        lastPass = t
        await runOnce()
      }
    } catch (err) {
      options.log.error({ err }, 'audit round failed; retrying')
    }
    if (!closed) timer = setTimeout(tick, Math.max(250, Math.round(leaseMs / 3)))
  }

  function tick(): void {
    running = loop()
  }
  tick()

  return {
    runOnce,
    isLeader: () => elector.isLeader(),
    async close() {
      closed = true
      clearTimeout(timer)
      await running
      await elector.release()
    },
  }
}
