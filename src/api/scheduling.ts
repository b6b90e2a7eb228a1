import type { Taint, Toleration } from './types.js'

// The scheduling vocabulary of the core API (k8s.io/api core/v1): where a pod asks to run,
// and the toleration rules every component (scheduler, DaemonSet controller) shares.

export interface NodeSelectorRequirement {
  key: string
  operator: string
  values?: string[]
}

export interface NodeSelectorTerm {
  matchExpressions?: NodeSelectorRequirement[]
  matchFields?: NodeSelectorRequirement[]
}

export interface Placement {
  /** Set on bound pods: that node only, and the scheduler's filters are bypassed. */
  nodeName?: string
  /**
   * A DaemonSet template's nodeName: the controller still runs a daemon pod there only when
   * the node passes node affinity and taints (pkg/controller/daemon NodeShouldRunDaemonPod).
   */
  nodeNameFiltered?: boolean
  nodeSelector?: Record<string, string>
  /** requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms; undefined when absent. */
  requiredTerms?: NodeSelectorTerm[]
  tolerations: Toleration[]
}

export const UNSCHEDULABLE_TAINT: Taint = { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const DECIMAL = /^[+-]?[0-9]+$/

/**
 * `strconv.ParseInt(s, 10, 64)`: an optional sign and decimal digits, within int64; anything
 * else (empty, spaces, `0x10`, `1e3`, `1_000`, out of range) is undefined. A JavaScript number
 * would lose precision past 2^53 and accept values Go refuses.
 */
export function parseInt64(s: string): bigint | undefined {
  if (!DECIMAL.test(s)) return undefined
  const n = BigInt(s)
  return n < INT64_MIN || n > INT64_MAX ? undefined : n
}

/** The toleration operators every Kubernetes version serves; others may not be served. */
export function isBasicTolerationOperator(operator: string | undefined): boolean {
  return operator === undefined || operator === '' || operator === 'Equal' || operator === 'Exists'
}

/**
 * v1.Toleration.ToleratesTaint (k8s.io/api core/v1 toleration.go), including `Lt`/`Gt`
 * (TaintTolerationComparisonOperators, alpha in 1.35): both values parse as int64 and the
 * taint's value is less / greater than the toleration's.
 */
export function tolerates(toleration: Toleration, taint: Taint): boolean {
  if (toleration.effect !== undefined && toleration.effect !== '' && toleration.effect !== taint.effect) return false
  if (toleration.key !== undefined && toleration.key !== '' && toleration.key !== taint.key) return false
  const operator: string = toleration.operator ?? 'Equal'
  if (operator === 'Exists') return true
  if (operator === 'Lt' || operator === 'Gt') {
    const bound = parseInt64(toleration.value ?? '')
    const value = parseInt64(taint.value ?? '')
    if (bound === undefined || value === undefined) return false
    return operator === 'Lt' ? value < bound : value > bound
  }
  if (operator !== 'Equal' && operator !== '') return false
  // An empty key with Equal is rejected by API validation; never treat it as a wildcard.
  if (toleration.key === undefined || toleration.key === '') return false
  return (toleration.value ?? '') === (taint.value ?? '')
}

export function toleratesAny(tolerations: readonly Toleration[], taint: Taint): boolean {
  for (const t of tolerations) if (tolerates(t, taint)) return true
  return false
}

/**
 * A toleration read from a JSON object (a pod spec's or a RuntimeClass's scheduling), field by
 * field: each of key, operator, value and effect absent, null or a string; `fail` names the
 * field that is not (`AT.key`, 'must be a string'). The values are not judged here: the
 * placement knows the operators and effects it can evaluate.
 */
export function readToleration(
  obj: Readonly<Record<string, unknown>>,
  at: string,
  fail: (path: string, what: string) => never,
): Toleration {
  const text = (key: string): string | undefined => {
    const v = obj[key]
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'string') fail(`${at}.${key}`, 'must be a string')
    return v
  }
  const toleration: Toleration = {}
  const key = text('key')
  const operator = text('operator')
  const value = text('value')
  const effect = text('effect')
  if (key !== undefined) toleration.key = key
  if (operator !== undefined) toleration.operator = operator as Toleration['operator']
  if (value !== undefined) toleration.value = value
  if (effect !== undefined) toleration.effect = effect as Toleration['effect']
  return toleration
}

/**
 * The tolerations the DaemonSet controller adds to every daemon pod
 * (pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations).
 */
export function daemonSetTolerations(hostNetwork: boolean): Toleration[] {
  const tolerations: Toleration[] = [
    { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
    { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
    { key: 'node.kubernetes.io/disk-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/pid-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' },
  ]
  if (hostNetwork) {
    tolerations.push({ key: 'node.kubernetes.io/network-unavailable', operator: 'Exists', effect: 'NoSchedule' })
  }
  return tolerations
}
