import {
  DEFAULT_STEER_SETTINGS,
  checkPodReview,
  type ReviewRecord,
  type SteerSettings,
} from '../admission/pod-check.js'
import type { PullableRegistries } from '../api/registries.js'
import { V1, type AdmissionResponse } from '../admission/review.js'
import type { InventoryView } from '../inventory/inventory-index.js'
import type { InventorySink, Mode } from '../api/types.js'
import { isRuntimeClass, toRuntimeClass } from '../inventory/runtime-class.js'
import { carriesPodTemplate } from '../workload/pod-template.js'
import { ManifestError, type ManifestObject } from './manifests.js'

// The webhook's verdict, offline: each object goes through the same checkPodReview as a
// CREATE review would, so the messages are the webhook's own, word for word.

export const WEBHOOK_NAME = 'pods.neverpull.dev'

export interface CheckResult {
  source: string
  document: number
  kind: string
  apiVersion: string
  namespace: string
  name: string
  /** kubectl's name for it: `deployment.apps/api`. */
  ref: string
  verdict: 'allow' | 'warn' | 'deny' | 'invalid'
  message?: string
  warnings: string[]
  findings: NonNullable<ReviewRecord['findings']>
}

export interface CheckReport {
  results: CheckResult[]
  /** Objects of kinds that carry no pod template: not checked. */
  ignored: number
}

export interface CheckOptions {
  inventory: InventoryView
  mode: Mode
  /** For objects without metadata.namespace (kubectl's -n). */
  namespace: string
  now: number
  /** `--pullable-registries`; any registry when absent. */
  pullable?: PullableRegistries
  /** `--steer` / `--steer-max-nodes`: the webhook's steering settings, so its notices are the webhook's. */
  steer?: SteerSettings
}

function groupOf(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf('/')
  return slash < 0
    ? { group: '', version: apiVersion }
    : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) }
}

export function kubectlRef(kind: string, group: string, name: string): string {
  const resource = kind.toLowerCase()
  return `${group === '' ? resource : `${resource}.${group}`}/${name}`
}

function verdictOf(response: AdmissionResponse, record: ReviewRecord): CheckResult['verdict'] {
  if (record.decision === 'invalid') return 'invalid'
  if (!response.allowed) return 'deny'
  return (response.warnings?.length ?? 0) > 0 ? 'warn' : 'allow'
}

/**
 * RuntimeClasses among the manifests join the inventory before anything is checked, as
 * `kubectl apply -f` of the same files would create them. A malformed one is an error.
 */
export function addManifestRuntimeClasses(objects: ManifestObject[], sink: InventorySink): number {
  let added = 0
  for (const m of objects) {
    if (!isRuntimeClass(m.object)) continue
    const r = toRuntimeClass(m.object)
    if (!r.ok) throw new ManifestError(`${m.source}: document ${m.document}: ${r.error}`)
    sink.upsertRuntimeClass(r.value)
    added++
  }
  return added
}

export function checkObjects(objects: ManifestObject[], options: CheckOptions): CheckReport {
  const results: CheckResult[] = []
  let ignored = 0
  for (const [i, m] of objects.entries()) {
    const kind = String(m.object['kind'])
    const apiVersion = String(m.object['apiVersion'])
    const { group, version } = groupOf(apiVersion)
    if (!carriesPodTemplate(group, kind)) {
      ignored++
      continue
    }
    const metadata = (m.object['metadata'] ?? {}) as { name?: unknown; generateName?: unknown; namespace?: unknown }
    const name =
      typeof metadata.name === 'string'
        ? metadata.name
        : typeof metadata.generateName === 'string'
          ? `${metadata.generateName}*`
          : ''
    const namespace =
      typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : options.namespace
    const review = {
      apiVersion: V1,
      kind: 'AdmissionReview',
      request: {
        uid: `check-${i + 1}`,
        kind: { group, version, kind },
        resource: { group, version, resource: `${kind.toLowerCase()}s` },
        name,
        namespace,
        operation: 'CREATE',
        userInfo: { username: 'neverpull-guard-check' },
        object: m.object,
        oldObject: null,
        dryRun: true,
      },
    }
    // Pods here have not been through the mutating webhook: they get the notice a workload gets.
    const steer = { ...(options.steer ?? DEFAULT_STEER_SETTINGS), pods: true }
    const { reply, record } = checkPodReview(review, {
      inventory: options.inventory,
      mode: options.mode,
      now: options.now,
      // These manifests have not met the apiserver: its RuntimeClass plugin would merge Pods too.
      mergePods: true,
      ...(options.pullable === undefined ? {} : { pullable: options.pullable }),
      steer,
    })
    const r = reply.response
    const result: CheckResult = {
      source: m.source,
      document: m.document,
      kind,
      apiVersion,
      namespace,
      name,
      ref: kubectlRef(kind, group, name),
      verdict: verdictOf(r, record),
      warnings: r.warnings ?? [],
      findings: record.findings ?? [],
    }
    if (!r.allowed && r.status !== undefined) result.message = r.status.message
    results.push(result)
  }
  return { results, ignored }
}

/** What `kubectl apply` would print: warnings and denials on stderr, the rest on stdout. */
export function renderText(report: CheckReport): { stdout: string; stderr: string } {
  let stdout = ''
  let stderr = ''
  for (const r of report.results) {
    for (const w of r.warnings) stderr += `Warning: ${w}\n`
    if (r.verdict === 'deny') {
      stderr += `Error from server (Forbidden): error when creating "${r.source}": admission webhook "${WEBHOOK_NAME}" denied the request: ${r.message ?? ''}\n`
    } else if (r.verdict === 'invalid') {
      stderr += `error: ${r.source}: document ${r.document}: ${r.message ?? 'invalid object'}\n`
    } else {
      stdout += `${r.ref} ${r.verdict === 'warn' ? 'allowed with warnings' : 'allowed'} (${r.source})\n`
    }
  }
  const denied = report.results.filter((r) => r.verdict === 'deny').length
  const warned = report.results.filter((r) => r.verdict === 'warn').length
  stdout += `${report.results.length} checked, ${denied} denied, ${warned} with warnings, ${report.ignored} other objects ignored\n`
  return { stdout, stderr }
}

export function exitCodeOf(report: CheckReport): number {
  if (report.results.some((r) => r.verdict === 'invalid')) return 2
  return report.results.some((r) => r.verdict === 'deny') ? 1 : 0
}
