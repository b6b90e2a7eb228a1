import { lookupKey } from '../image/reference.js'
import type { InventoryView } from '../inventory/index.js'
import { bitsAndNot, bitsCount, bitsForEach, bitsIsEmpty, type Bits } from '../util/node-set.js'
import { STEERED_ANNOTATION, type Mode } from '../api/types.js'
import type { NodeSelectorRequirement, NodeSelectorTerm, Placement } from '../api/scheduling.js'
import { eligibleNodes } from '../placement/placement.js'
import { extractPodTemplate, type PodTemplateFacts } from '../workload/pod-template.js'

// Steering, pure: which nodes a pod with imagePullPolicy: Never images should be limited
// to, and the JSONPatch that limits it. The scheduler only scores image locality; a
// required node affinity term is a filter. Terms are ORed and the requirements of a term
// ANDed, so adding one requirement to every term intersects the pod's own choice with S.
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
 * Whether steering applies in a namespace: its `neverpull.dev/steer` label first; without
 * it the global `--steer`, except in namespaces whose mode is off (left alone entirely).
 */
export function steeringFor(view: InventoryView, namespace: string, global: boolean, mode: Mode): boolean {
  return view.namespaceSteer(namespace) ?? (global && mode !== 'off')
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
export function steeringTarget(view: InventoryView, placement: Placement, images: readonly string[], policy: SteerPolicy, now: number): SteerTarget {
  if (images.length === 0) return skip('no-never-images')
  if (placement.nodeName !== undefined && placement.nodeName !== '') return skip('node-name')
  const keys: string[] = []
  for (const image of images) {
    const parsed = lookupKey(image)
    if (!parsed.ok) return skip('invalid-reference')
    keys.push(parsed.key)
  }
  const where = eligibleNodes(view, placement)
  const E = where.nodes
  const n = where.count
  if (n === 0) return skip('no-eligible-nodes')
  const S = new Uint32Array(E)
  const scratch = new Uint32Array(E.length)
  for (const key of keys) {
    const H = view.nodesWithImage(key)
    if (H === undefined) return skip('nowhere', n)
    H.intersectInto(S, scratch)
    S.set(scratch)
  }
  const k = bitsIsEmpty(S) ? 0 : bitsCount(S)
  if (k === 0) return skip('nowhere', n)
  if (k === n) return skip('everywhere', n, k)
  // Never steer on missing data: an eligible node without a current list may hold the image.
  const unknown = new Uint32Array(E)
  bitsAndNot(unknown, view.freshNodes(now))
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
  for (const c of template.containers) if (c.pullPolicy === 'Never' && !images.includes(c.image)) images.push(c.image)
  return images
}

// ---- the pod and its patch ----

/** RFC 6902 operations, as the apiserver applies them (evanphx/json-patch). */
export type PatchOperation =
  | { op: 'add' | 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string }

export type PodSteeringOutcome =
  /** First steered: counted and logged. */
  | 'steered'
  /** Reinvoked after another webhook changed the pod: our requirement updated in place. */
  | 'resteered'
  /** Already steered as it should be (a reinvocation): nothing to do. */
  | 'unchanged'
  /** Was steered, should not be any more: our requirement and annotation removed. */
  | 'released'
  | 'skipped'

export interface PodSteering {
  outcome: PodSteeringOutcome
  target: SteerTarget
  patch: PatchOperation[]
}

export type SteerPodResult = { ok: true; steering: PodSteering } | { ok: false; error: string }

type ListName = 'matchFields' | 'matchExpressions'

/** Our requirement, found again on a reinvocation: which list, and its index in each term (-1: none). */
interface Own {
  list: ListName
  index: number[]
}

const REQUIRED = '/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution'
const LABEL_NOTE = /\(node label ([^=()]+)=([^()]*)\)$/

type Json = Record<string, unknown>

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function pointer(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1')
}

function requirementOf(target: Extract<SteerTarget, { steer: true }>): { list: ListName; requirement: NodeSelectorRequirement } {
  if (target.label !== undefined) {
    return { list: 'matchExpressions', requirement: { key: target.label.key, operator: 'In', values: [target.label.value] } }
  }
  return { list: 'matchFields', requirement: { key: 'metadata.name', operator: 'In', values: target.names } }
}

export function steeredAnnotation(target: Extract<SteerTarget, { steer: true }>): string {
  const text = `${target.count} of ${target.eligible} eligible nodes`
  return target.label === undefined ? text : `${text} (node label ${target.label.key}=${target.label.value})`
}

function sameRequirement(a: NodeSelectorRequirement, b: NodeSelectorRequirement): boolean {
  const av = a.values ?? []
  const bv = b.values ?? []
  return a.key === b.key && a.operator === b.operator && av.length === bv.length && av.every((v, i) => v === bv[i])
}

function lastIndex(list: NodeSelectorRequirement[] | undefined, match: (r: NodeSelectorRequirement) => boolean): number {
  if (list === undefined) return -1
  for (let i = list.length - 1; i >= 0; i--) if (match(list[i]!)) return i
  return -1
}

/**
 * Our requirement in each term, recognised by the annotation we set with it: the last
 * `metadata.name In` of each term's matchFields whose values are the ones most terms
 * carry (we write the same values into every term), or, for the label form named in the
 * annotation, the last `KEY In [VALUE]` expression.
 */
function findOwn(terms: NodeSelectorTerm[] | undefined, annotation: string | undefined): Own | undefined {
  if (terms === undefined || annotation === undefined) return undefined
  const note = LABEL_NOTE.exec(annotation)
  let own: Own
  if (note !== null) {
    const wanted: NodeSelectorRequirement = { key: note[1]!, operator: 'In', values: [note[2]!] }
    own = { list: 'matchExpressions', index: terms.map((t) => lastIndex(t.matchExpressions, (r) => sameRequirement(r, wanted))) }
  } else {
    const candidates = terms.map((t) => lastIndex(t.matchFields, (r) => r.key === 'metadata.name' && r.operator === 'In'))
    const signatures = candidates.map((j, i) => (j < 0 ? undefined : JSON.stringify(terms[i]!.matchFields![j]!.values ?? [])))
    const counts = new Map<string, number>()
    for (const s of signatures) if (s !== undefined) counts.set(s, (counts.get(s) ?? 0) + 1)
    let best: string | undefined
    for (const [s, c] of counts) if (best === undefined || c > counts.get(best)!) best = s
    own = { list: 'matchFields', index: candidates.map((j, i) => (signatures[i] === best ? j : -1)) }
  }
  return own.index.some((j) => j >= 0) ? own : undefined
}

/** The terms without our requirement; terms left empty were ours alone and go. */
function withoutOwn(terms: NodeSelectorTerm[], own: Own): NodeSelectorTerm[] | undefined {
  const out: NodeSelectorTerm[] = []
  for (const [i, t] of terms.entries()) {
    const j = own.index[i]!
    const term: NodeSelectorTerm = { ...t }
    if (j >= 0) term[own.list] = t[own.list]!.filter((_, k) => k !== j)
    if ((term.matchExpressions?.length ?? 0) + (term.matchFields?.length ?? 0) > 0 || j < 0) out.push(term)
  }
  return out.length === 0 ? undefined : out
}

function ownerIsDaemonSet(metadata: Json): boolean {
  const owners = metadata['ownerReferences']
  return Array.isArray(owners) && owners.some((o) => isObject(o) && o['kind'] === 'DaemonSet')
}

/**
 * The steering of one pod being created: the target S and the JSONPatch that limits the
 * pod to it (empty when nothing changes). Idempotent: a pod we already steered is
 * recognised, judged by its own affinity, and patched only if S changed.
 */
export function steerPod(view: InventoryView, pod: unknown, policy: SteerPolicy, now: number): SteerPodResult {
  const extracted = extractPodTemplate('Pod', pod)
  if (!extracted.ok) return { ok: false, error: extracted.error }
  const template = extracted.template
  const left = (reason: SteerSkip): SteerPodResult => ({ ok: true, steering: { outcome: 'skipped', target: skip(reason), patch: [] } })
  if (template === null || !isObject(pod)) return left('no-never-images')
  const metadata = isObject(pod['metadata']) ? pod['metadata'] : {}
  const images = neverImages(template)
  if (images.length === 0) return left('no-never-images')
  if (template.placement.nodeName !== undefined) return left('node-name')
  if (template.mirror) return left('mirror')
  if (ownerIsDaemonSet(metadata)) return left('daemonset')

  const annotations = isObject(metadata['annotations']) ? metadata['annotations'] : undefined
  const current = annotations?.[STEERED_ANNOTATION]
  const terms = template.placement.requiredTerms
  const own = findOwn(terms, typeof current === 'string' ? current : undefined)
  const placement: Placement = { ...template.placement }
  if (own !== undefined && terms !== undefined) {
    const base = withoutOwn(terms, own)
    if (base === undefined) delete placement.requiredTerms
    else placement.requiredTerms = base
  }
  const target = steeringTarget(view, placement, images, policy, now)
  const patch: PatchOperation[] = []
  const annotationPath = `/metadata/annotations/${pointer(STEERED_ANNOTATION)}`

  if (!target.steer) {
    if (own !== undefined && terms !== undefined) {
      if (placement.requiredTerms === undefined) patch.push({ op: 'remove', path: REQUIRED })
      else for (const [i, j] of own.index.entries()) if (j >= 0) patch.push({ op: 'remove', path: `${REQUIRED}/nodeSelectorTerms/${i}/${own.list}/${j}` })
    }
    if (current !== undefined) patch.push({ op: 'remove', path: annotationPath })
    return { ok: true, steering: { outcome: patch.length > 0 ? 'released' : 'skipped', target, patch } }
  }

  const { list, requirement } = requirementOf(target)
  const spec = isObject(pod['spec']) ? pod['spec'] : {}
  if (terms === undefined) {
    const required = { nodeSelectorTerms: [{ [list]: [requirement] }] }
    const affinity = spec['affinity']
    const nodeAffinity = isObject(affinity) ? affinity['nodeAffinity'] : undefined
    if (!isObject(affinity)) patch.push({ op: 'add', path: '/spec/affinity', value: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: required } } })
    else if (!isObject(nodeAffinity)) patch.push({ op: 'add', path: '/spec/affinity/nodeAffinity', value: { requiredDuringSchedulingIgnoredDuringExecution: required } })
    else patch.push({ op: 'add', path: REQUIRED, value: required })
  } else {
    const rawTerms = ((spec['affinity'] as Json)['nodeAffinity'] as Json)['requiredDuringSchedulingIgnoredDuringExecution'] as Json
    const raw = rawTerms['nodeSelectorTerms'] as Json[]
    for (const [i, term] of terms.entries()) {
      const at = `${REQUIRED}/nodeSelectorTerms/${i}`
      const j = own?.index[i] ?? -1
      if (j >= 0 && own!.list === list) {
        if (!sameRequirement(term[list]![j]!, requirement)) patch.push({ op: 'replace', path: `${at}/${list}/${j}`, value: requirement })
        continue
      }
      if (j >= 0) patch.push({ op: 'remove', path: `${at}/${own!.list}/${j}` })
      if (Array.isArray(raw[i]?.[list])) patch.push({ op: 'add', path: `${at}/${list}/-`, value: requirement })
      else patch.push({ op: 'add', path: `${at}/${list}`, value: [requirement] })
    }
  }
  const value = steeredAnnotation(target)
  if (current !== value) {
    if (annotations !== undefined) patch.push({ op: 'add', path: annotationPath, value })
    else if (isObject(pod['metadata'])) patch.push({ op: 'add', path: '/metadata/annotations', value: { [STEERED_ANNOTATION]: value } })
    else patch.push({ op: 'add', path: '/metadata', value: { annotations: { [STEERED_ANNOTATION]: value } } })
  }
  const outcome: PodSteeringOutcome = patch.length === 0 ? 'unchanged' : own === undefined ? 'steered' : 'resteered'
  return { ok: true, steering: { outcome, target, patch } }
}
