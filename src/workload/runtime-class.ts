import type { Placement } from '../api/scheduling.js'
import type { RuntimeClassFacts, Toleration } from '../api/types.js'

// What the RuntimeClass admission plugin (plugin/pkg/admission/runtimeclass/admission.go,
// on by default) does to every Pod that names a RuntimeClass, at creation and before any
// validating webhook: setScheduling merges the RuntimeClass's scheduling.nodeSelector into
// the pod's (a key the pod already has with another value rejects the pod: "conflict:
// runtimeClass.scheduling.nodeSelector[k] = v; pod.spec.nodeSelector[k] = w") and its
// tolerations into the pod's (pkg/util/tolerations MergeTolerations, a union). A missing
// RuntimeClass rejects the pod ("pod rejected: RuntimeClass %q not found").
// Pods reach the webhook merged already; workload templates never are: their pods are,
// one by one, when a controller creates them. So templates are merged here.

export type RuntimeClassMerge = { ok: true; placement: Placement } | { ok: false; conflict: string }

function sameToleration(a: Toleration, b: Toleration): boolean {
  return (
    (a.key ?? '') === (b.key ?? '') &&
    (a.operator ?? '') === (b.operator ?? '') &&
    (a.value ?? '') === (b.value ?? '') &&
    (a.effect ?? '') === (b.effect ?? '')
  )
}

/**
 * The placement of the pods a template creates, once the plugin has merged `runtimeClass`.
 * `daemon`: a DaemonSet's controller picks its nodes from the template as written
 * (pkg/controller/daemon NodeShouldRunDaemonPod builds the pod with NewPod, unmerged), so the
 * RuntimeClass's tolerations never add a node; its nodeSelector still keeps the daemon pod
 * Pending on nodes it does not match.
 */
export function mergeRuntimeClass(
  placement: Placement,
  runtimeClass: RuntimeClassFacts,
  daemon: boolean,
): RuntimeClassMerge {
  const selector = runtimeClass.nodeSelector
  let nodeSelector = placement.nodeSelector
  if (selector !== undefined) {
    if (nodeSelector === undefined) {
      nodeSelector = selector
    } else {
      const merged: Record<string, string> = { ...nodeSelector }
      for (const key of Object.keys(selector)) {
        const value = selector[key]!
        const podValue = nodeSelector[key]
        if (podValue !== undefined && podValue !== value) {
          return {
            ok: false,
            conflict: `conflict: runtimeClass.scheduling.nodeSelector[${key}] = ${value}; pod.spec.nodeSelector[${key}] = ${podValue}`,
          }
        }
        merged[key] = value
      }
      nodeSelector = merged
    }
  }
  let tolerations = placement.tolerations
  if (!daemon && runtimeClass.tolerations.length > 0) {
    tolerations = tolerations.slice()
    for (const t of runtimeClass.tolerations) if (!tolerations.some((p) => sameToleration(p, t))) tolerations.push(t)
  }
  const out: Placement = { ...placement, tolerations }
  if (nodeSelector !== undefined) out.nodeSelector = nodeSelector
  return { ok: true, placement: out }
}
