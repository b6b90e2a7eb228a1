import { lookupKey, type ImageLookup } from '../image/reference.js'
import type { InventoryView } from '../inventory/inventory-index.js'
import { isObject, type JsonObject } from '../util/guards.js'
import { bitsAndNot, bitsCount, bitsForEach, bitsHas, bitsIsEmpty, type Bits } from '../util/node-set.js'
import { STEERED_ANNOTATION, type Mode } from '../api/types.js'
import type { NodeSelectorRequirement, Placement } from '../api/scheduling.js'
import { eligibleNodes } from '../placement/placement.js'
import { extractPodTemplate, type PodTemplateFacts } from '../workload/pod-template.js'

// Steering, pure: which nodes a pod with imagePullPolicy: Never images should be limited
// to, and the JSONPatch that limits it. The scheduler only scores image locality; a
// required node affinity term is a filter. Terms are ORed and the requirements of a term
// ANDed, so adding a requirement to the pod's terms intersects its own choice with S.
//
//   E = the pod's eligible nodes (its own affinity, without a requirement we added before)
//   S = nodes of E that hold every Never image
//   steer when 0 < |S| < |E|, no node of E outside S lacks a current image list, and S
//   fits in --steer-max-nodes names (or is exactly the nodes of E with one shared label).

export interface SteerPolicy {
  /** Past this many nodes, S is written as a shared node label or not at all. */
  maxNodes: number
  /**
   * Pods too get the notice: only offline (`check`), where no mutating webhook ran. The
   * webhook sees a Pod after steering; one that is not steered then was not (see steerPod).
   */
  pods?: boolean
}

/** Why a pod is left alone. */
export type SteerSkip =
  | 'no-never-images'
  | 'node-name'
  | 'daemonset'
  | 'mirror'
  | 'invalid-reference'
  | 'no-eligible-nodes'
  | 'nowhere'
  | 'everywhere'
  | 'unknown'
  | 'too-many-nodes'

export interface SteerLabel {
  key: string
  value: string
}

export type SteerTarget =
  | {
      steer: true
      /** S, a bitset owned by the caller. */
      nodes: Bits
      count: number
      eligible: number
      /** S by name, sorted; empty when written as a label. */
      names: string[]
      /** Set when S is written as `label In [value]` (|S| above maxNodes). */
      label: SteerLabel | undefined
    }
  | { steer: false; reason: SteerSkip; count: number; eligible: number }

/**
 * Whether steering applies in a namespace: never where the mode is off (left alone entirely,
 * as the registration's namespaceSelector does); else its `neverpull.dev/steer` label, and
 * without one the global `--steer`.
 */
export function steeringFor(view: InventoryView, namespace: string, global: boolean, mode: Mode): boolean {
  return mode !== 'off' && (view.namespaceSteer(namespace) ?? global)
}

/** Kinds whose pods are created later by a controller and so pass the mutating webhook. */
export const STEERED_WORKLOAD_KINDS: ReadonlySet<string> = new Set([
  'Deployment',
  'ReplicaSet',
  'StatefulSet',
  'ReplicationController',
  'Job',
  'CronJob',
])

function skip(reason: SteerSkip, eligible = 0, count = 0): SteerTarget {
  return { steer: false, reason, count, eligible }
}

/** A label (key, value) whose nodes within E are exactly S, if one exists. */
function sharedLabel(view: InventoryView, E: Bits, S: Bits): SteerLabel | undefined {
  let first = -1
  bitsForEach(S, (slot) => {
    first = slot
    return false
  })
  const labels = first < 0 ? undefined : view.node(first)?.labels
  if (labels === undefined) return undefined
  for (const key of Object.keys(labels).sort()) {
    const value = labels[key]!
    const bits = view.labelValue(key, value)
    if (bits === undefined) continue
    let exact = true
    for (let i = 0; i < S.length && exact; i++) exact = ((bits[i] ?? 0) & E[i]!) === S[i]
    if (exact) return { key, value }
  }
  return undefined
}

/** S for a placement and the images that must be on the node. */
export function steeringTarget(
  view: InventoryView,
  placement: Placement,
  images: readonly string[],
  policy: SteerPolicy,
  now: number,
): SteerTarget {
  if (images.length === 0) return skip('no-never-images')
  if (placement.nodeName !== undefined && placement.nodeName !== '') return skip('node-name')
  const lookups: ImageLookup[] = []
  for (const image of images) {
    const parsed = lookupKey(image)
    if (!parsed.ok) return skip('invalid-reference')
    lookups.push(parsed)
  }
  const where = eligibleNodes(view, placement)
  const E = where.nodes
  const n = where.count
  if (n === 0) return skip('no-eligible-nodes')
  const S = new Uint32Array(E)
  const scratch = new Uint32Array(E.length)
  // Which nodes hold an image as the decision reads them: a fresh NodeImageSet outranks
  // the kubelet's cached Node.status.images on its node.
  const fresh = view.freshNodes(now)
  for (const lookup of lookups) {
    const H = view.nodesResolving(lookup, fresh)
    if (H === undefined) return skip('nowhere', n)
    H.intersectInto(S, scratch)
    S.set(scratch)
  }
  const k = bitsIsEmpty(S) ? 0 : bitsCount(S)
  if (k === 0) return skip('nowhere', n)
  if (k === n) return skip('everywhere', n, k)
  // Never steer on missing data: an eligible node without a current list may hold the image.
  const unknown = new Uint32Array(E)
  bitsAndNot(unknown, fresh)
  bitsAndNot(unknown, S)
  if (!bitsIsEmpty(unknown)) return skip('unknown', n, k)
  if (k > policy.maxNodes) {
    const label = sharedLabel(view, E, S)
    if (label === undefined) return skip('too-many-nodes', n, k)
    return { steer: true, nodes: S, count: k, eligible: n, names: [], label }
  }
  const names: string[] = []
  bitsForEach(S, (slot) => {
    names.push(view.nameOf(slot))
  })
  names.sort()
  return { steer: true, nodes: S, count: k, eligible: n, names, label: undefined }
}

/** The images a pod needs on its node because it may not pull them. */
export function neverImages(template: PodTemplateFacts): string[] {
  const images: string[] = []
  // A template container without an image is filled in by other admission: not ours to place.
  for (const c of template.containers)
    if (c.pullPolicy === 'Never' && c.image !== '' && !images.includes(c.image)) images.push(c.image)
  return images
}

// ---- the pod and its patch ----
//
// The apiserver accepts a matchFields requirement with exactly one value (core validation
// validateNodeFieldSelectorRequirement: "must be only one value when `operator` is 'In' or
// 'NotIn' for node field selector"), and the scheduler reads it so. So S by name is one
// term per node: each of the pod's own terms T becomes, for every s in S that T admits,
// the term T AND metadata.name In [s]. Their union is exactly (T1 OR ... OR Tm) AND S.
// The DaemonSet controller pins its pods with the same one-value requirement.

/** RFC 6902 operations, as the apiserver applies them (evanphx/json-patch). */
export type PatchOperation = { op: 'add' | 'replace'; path: string; value: unknown } | { op: 'remove'; path: string }

export type PodSteeringOutcome =
  /** First steered: counted and logged. */
  | 'steered'
  /** Reinvoked after another webhook changed the pod: our terms rewritten. */
  | 'resteered'
  /** Already steered as it should be (a reinvocation): nothing to do. */
  | 'unchanged'
  /** Was steered, should not be any more: the pod's own terms and no annotation again. */
  | 'released'
  | 'skipped'

export interface PodSteering {
  outcome: PodSteeringOutcome
  target: SteerTarget
  patch: PatchOperation[]
}

export type SteerPodResult = { ok: true; steering: PodSteering } | { ok: false; error: string }

const AFFINITY = '/spec/affinity'
const REQUIRED = '/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution'
const LABEL_NOTE = /\(node label ([^=()]+)=([^()]*)\)$/

function pointer(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1')
}

export function steeredAnnotation(target: Extract<SteerTarget, { steer: true }>): string {
  const text = `${target.count} of ${target.eligible} eligible nodes`
  return target.label === undefined ? text : `${text} (node label ${target.label.key}=${target.label.value})`
}

function nameRequirement(name: string): NodeSelectorRequirement {
  return { key: 'metadata.name', operator: 'In', values: [name] }
}

function isNameRequirement(r: unknown): boolean {
  return (
    isObject(r) &&
    r['key'] === 'metadata.name' &&
    r['operator'] === 'In' &&
    Array.isArray(r['values']) &&
    r['values'].length === 1
  )
}

function list(term: JsonObject, key: 'matchExpressions' | 'matchFields'): unknown[] {
  const v = term[key]
  return Array.isArray(v) ? v : []
}

function isEmptyTerm(term: JsonObject): boolean {
  return list(term, 'matchExpressions').length === 0 && list(term, 'matchFields').length === 0
}

/**
 * The pod's own terms, without what we added (recognised by the annotation we set with
 * it): for the label form named in the annotation, the last `KEY In [VALUE]` expression of
 * each term; for names, the last matchFields requirement of every term, when each is a
 * one-value `metadata.name In`. Terms left empty were ours alone; duplicates (one per node)
 * fold back into one. `undefined` when no own term is left; `own` false when nothing was ours.
 */
function ownTerms(raw: JsonObject[], annotation: string | undefined): { base: JsonObject[] | undefined; own: boolean } {
  if (annotation === undefined || raw.length === 0) return { base: raw, own: false }
  const note = LABEL_NOTE.exec(annotation)
  const stripped: JsonObject[] = []
  if (note !== null) {
    let found = false
    for (const term of raw) {
      const expressions = list(term, 'matchExpressions')
      let j = expressions.length - 1
      for (; j >= 0; j--) {
        const r = expressions[j]
        if (
          isObject(r) &&
          r['key'] === note[1] &&
          r['operator'] === 'In' &&
          Array.isArray(r['values']) &&
          r['values'].length === 1 &&
          r['values'][0] === note[2]
        )
          break
      }
      if (j >= 0) found = true
      stripped.push(j < 0 ? term : { ...term, matchExpressions: expressions.filter((_, k) => k !== j) })
    }
    if (!found) return { base: raw, own: false }
  } else {
    for (const term of raw) {
      const fields = list(term, 'matchFields')
      if (fields.length === 0 || !isNameRequirement(fields[fields.length - 1])) return { base: raw, own: false }
      stripped.push({ ...term, matchFields: fields.slice(0, -1) })
    }
  }
  const seen = new Set<string>()
  const base: JsonObject[] = []
  for (const term of stripped) {
    if (isEmptyTerm(term)) continue
    const tidy: JsonObject = { ...term }
    for (const key of ['matchExpressions', 'matchFields'] as const)
      if (Array.isArray(tidy[key]) && (tidy[key] as unknown[]).length === 0) delete tidy[key]
    const id = JSON.stringify(tidy)
    if (seen.has(id)) continue
    seen.add(id)
    base.push(tidy)
  }
  return { base: base.length === 0 ? undefined : base, own: true }
}

/** The pod with its required node affinity terms replaced (`undefined`: none). */
function withTerms(pod: JsonObject, spec: JsonObject, terms: JsonObject[] | undefined): JsonObject {
  const affinity = isObject(spec['affinity']) ? spec['affinity'] : {}
  const nodeAffinity = isObject(affinity['nodeAffinity']) ? { ...affinity['nodeAffinity'] } : {}
  if (terms === undefined) delete nodeAffinity['requiredDuringSchedulingIgnoredDuringExecution']
  else nodeAffinity['requiredDuringSchedulingIgnoredDuringExecution'] = { nodeSelectorTerms: terms }
  return { ...pod, spec: { ...spec, affinity: { ...affinity, nodeAffinity } } }
}

/** The terms that limit the pod to S: see the comment at the top of this section. */
function steeredTerms(
  view: InventoryView,
  base: JsonObject[] | undefined,
  placement: Placement,
  target: Extract<SteerTarget, { steer: true }>,
): JsonObject[] {
  if (target.label !== undefined) {
    const requirement: NodeSelectorRequirement = { key: target.label.key, operator: 'In', values: [target.label.value] }
    if (base === undefined) return [{ matchExpressions: [requirement] }]
    return base.map((term) => ({ ...term, matchExpressions: [...list(term, 'matchExpressions'), requirement] }))
  }
  if (base === undefined) return target.names.map((name) => ({ matchFields: [nameRequirement(name)] }))
  const out: JsonObject[] = []
  const facts = placement.requiredTerms ?? []
  for (const [i, term] of base.entries()) {
    const own = facts[i]
    // Which nodes of S this term admits; the others would only add terms that match nothing.
    const admits = own === undefined ? undefined : eligibleNodes(view, { ...placement, requiredTerms: [own] }).nodes
    for (const name of target.names) {
      const slot = view.slotOf(name)
      if (admits !== undefined && (slot === undefined || !bitsHas(admits, slot))) continue
      out.push({ ...term, matchFields: [...list(term, 'matchFields'), nameRequirement(name)] })
    }
  }
  return out
}

function ownerIsDaemonSet(metadata: JsonObject): boolean {
  const owners = metadata['ownerReferences']
  return Array.isArray(owners) && owners.some((o) => isObject(o) && o['kind'] === 'DaemonSet')
}

/**
 * The steering of one pod being created: the target S and the JSONPatch that limits the
 * pod to it (empty when nothing changes). Idempotent: a pod we already steered is
 * recognised, judged by its own affinity, and patched only if its terms would change.
 */
export function steerPod(view: InventoryView, pod: unknown, policy: SteerPolicy, now: number): SteerPodResult {
  const extracted = extractPodTemplate('Pod', pod)
  if (!extracted.ok) return { ok: false, error: extracted.error }
  const template = extracted.template
  const left = (reason: SteerSkip): SteerPodResult => ({
    ok: true,
    steering: { outcome: 'skipped', target: skip(reason), patch: [] },
  })
  if (template === null || !isObject(pod)) return left('no-never-images')
  const metadata = isObject(pod['metadata']) ? pod['metadata'] : undefined
  const images = neverImages(template)
  if (images.length === 0) return left('no-never-images')
  if (template.placement.nodeName !== undefined) return left('node-name')
  if (template.mirror) return left('mirror')
  if (metadata !== undefined && ownerIsDaemonSet(metadata)) return left('daemonset')

  const spec = pod['spec'] as JsonObject
  const annotations = metadata !== undefined && isObject(metadata['annotations']) ? metadata['annotations'] : undefined
  const current = annotations?.[STEERED_ANNOTATION]
  // extractPodTemplate checked the shape: when it found terms, the path to them is objects.
  const hasTerms = template.placement.requiredTerms !== undefined
  const raw = hasTerms
    ? (
        ((spec['affinity'] as JsonObject)['nodeAffinity'] as JsonObject)[
          'requiredDuringSchedulingIgnoredDuringExecution'
        ] as JsonObject
      )['nodeSelectorTerms']
    : undefined
  const rawTerms = Array.isArray(raw) ? (raw as JsonObject[]) : []
  const { base, own } = hasTerms
    ? ownTerms(rawTerms, typeof current === 'string' ? current : undefined)
    : { base: undefined, own: false }
  let placement = template.placement
  if (own) {
    const again = extractPodTemplate('Pod', withTerms(pod, spec, base))
    if (!again.ok || again.template === null) return { ok: false, error: again.ok ? 'pod spec vanished' : again.error }
    placement = again.template.placement
  }
  const target = steeringTarget(view, placement, images, policy, now)
  const patch: PatchOperation[] = []
  const annotationPath = `/metadata/annotations/${pointer(STEERED_ANNOTATION)}`

  if (!target.steer) {
    if (own) {
      if (base === undefined) patch.push({ op: 'remove', path: REQUIRED })
      else patch.push({ op: 'replace', path: `${REQUIRED}/nodeSelectorTerms`, value: base })
    }
    if (current !== undefined) patch.push({ op: 'remove', path: annotationPath })
    return { ok: true, steering: { outcome: patch.length > 0 ? 'released' : 'skipped', target, patch } }
  }

  const terms = steeredTerms(view, own ? base : hasTerms ? rawTerms : undefined, placement, target)
  if (!hasTerms) {
    const required = { nodeSelectorTerms: terms }
    const affinity = spec['affinity']
    const nodeAffinity = isObject(affinity) ? affinity['nodeAffinity'] : undefined
    if (!isObject(affinity))
      patch.push({
        op: 'add',
        path: AFFINITY,
        value: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: required } },
      })
    else if (!isObject(nodeAffinity))
      patch.push({
        op: 'add',
        path: `${AFFINITY}/nodeAffinity`,
        value: { requiredDuringSchedulingIgnoredDuringExecution: required },
      })
    else patch.push({ op: 'add', path: REQUIRED, value: required })
  } else if (JSON.stringify(terms) !== JSON.stringify(rawTerms)) {
    patch.push({ op: 'replace', path: `${REQUIRED}/nodeSelectorTerms`, value: terms })
  }
  const value = steeredAnnotation(target)
  if (current !== value) {
    if (annotations !== undefined) patch.push({ op: 'add', path: annotationPath, value })
    else if (metadata !== undefined)
      patch.push({ op: 'add', path: '/metadata/annotations', value: { [STEERED_ANNOTATION]: value } })
    else patch.push({ op: 'add', path: '/metadata', value: { annotations: { [STEERED_ANNOTATION]: value } } })
  }
  const outcome: PodSteeringOutcome = patch.length === 0 ? 'unchanged' : own ? 'resteered' : 'steered'
  return { ok: true, steering: { outcome, target, patch } }
}
