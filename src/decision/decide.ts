import { isDeepStrictEqual } from 'node:util'
import type { ImageGcPolicy } from '../api/image-gc.js'
import { lookupKey, repositoryOfKey, shortRef } from '../image/reference.js'
import { ANY_REGISTRY, isPullable, type PullableRegistries } from '../api/registries.js'
import { registryOf } from '../image/registry.js'
import { localhostKey } from '../image/crio.js'
import { nearest } from '../image/similar.js'
import type { InventoryView } from '../inventory/inventory-index.js'
import {
  bitsAnd,
  bitsAndNot,
  bitsAndNotCount,
  bitsCount,
  bitsCountAnd,
  bitsFirst,
  bitsFirstIn,
  bitsForEach,
  bitsHas,
  NO_BITS,
  type Bits,
} from '../util/node-set.js'
import type { Mode } from '../api/types.js'
import { eligibleNodes, type Eligibility } from '../placement/placement.js'
import { isBasicTolerationOperator, type Placement } from '../api/scheduling.js'
import { mergeRuntimeClass } from '../workload/runtime-class.js'
import type { ContainerFacts, PodTemplateFacts } from '../workload/pod-template.js'
import { neverImages, STEERED_WORKLOAD_KINDS, steeringTarget, type SteerPolicy } from './steer.js'

// The admission decision, pure: the same facts and the same inventory give the same answer.
// For each container with imagePullPolicy: Never, with E = eligible nodes, H = nodes that
// have the image (by a node's fresh NodeImageSet alone; on a node without one, by its
// stale NodeImageSet or its Node.status.images), U = eligible nodes whose image list is
// missing or stale:
//   E empty                      -> warn (the scheduler will explain the placement)
//   E∩H empty, U empty           -> deny (image is definitely on none of them)
//   E∩H empty, U not empty       -> warn (never deny on missing data)
//   E∩H not empty, E ⊄ H         -> warn; a DaemonSet missing it on known nodes -> deny
//   E ⊆ H                        -> allow
// then: an UPDATE that did not change a container's image or policy, or a mirror pod,
// never denies for it; and the namespace's mode turns denials into warnings (warn),
// into log lines (audit), or skips the check (off).
// Where the nodes can pull only from some registries (pullable registries), a container
// whose registry is not one of them is judged too: IfNotPresent exactly like Never (the
// kubelet would try to pull and fail), Always denied outright (the kubelet contacts the
// registry on every start, present or not).

export type Severity = 'ok' | 'warn' | 'deny'

export type Reason =
  | 'present'
  | 'missing'
  | 'partial'
  | 'unknown'
  | 'no-eligible-nodes'
  | 'unknown-node'
  | 'invalid-reference'
  /** imagePullPolicy: Always from a registry the nodes cannot pull from. */
  | 'unpullable'
  /** On some eligible nodes, and the workload's pods will be steered to them (a notice). */
  | 'steered'

/** The pull policy the kubelet applies to a checked container. */
export type PullPolicy = 'Never' | 'IfNotPresent' | 'Always'

/** Up to NAMES_SHOWN node names, and how many there are in all. */
export interface NodeList {
  names: string[]
  count: number
}

export interface Finding {
  container: ContainerFacts
  reason: Reason
  severity: Severity
  /** CREATE, or an UPDATE that changed this container's image or pull policy. */
  changed: boolean
  /** The runtime lookup key (`docker.io/library/nginx:1.27`), when the reference parses. */
  key: string | undefined
  /** The parse error, for invalid-reference. */
  error: string | undefined
  eligible: number
  present: NodeList
  missing: NodeList
  unknown: NodeList
  /** Nodes outside the eligible set that have the image. */
  elsewhere: NodeList
  /** Short references of similar images the nodes hold ("did you mean"). */
  suggestions: string[]
  /** The node named by spec.nodeName, when the inventory does not know it. */
  nodeName: string | undefined
  /** For no-eligible-nodes: why, in the scheduler's words (`0/4 nodes are available: ...`). */
  scheduler: string | undefined
  /** Never, or IfNotPresent/Always when the image's registry is not pullable. */
  policy: PullPolicy
  /** The registry the nodes cannot pull from, when that is why the container is checked. */
  registry: string | undefined
  /** For an unpullable Always: what the presence check found (present, missing, ...). */
  presence: Reason | undefined
  /** Eligible nodes without the image that hold it where the kubelet does not look (up to NAMES_SHOWN). */
  wrongPlace: WrongPlace[]
  /** Eligible nodes without the image whose runtime is CRI-O: the fix loads it there with podman, not ctr. */
  missingOnCrio: number
  /** How many eligible nodes hold it only there. */
  wrongPlaceCount: number
  /** Eligible nodes that hold the image unpinned on an image filesystem at or above the GC threshold. */
  gcRisk: GcRisk | undefined
}

/** The kubelet's image GC may delete the image on these nodes once no container uses it. */
export interface GcRisk {
  /** The fullest such node first, up to NAMES_SHOWN. */
  nodes: Array<{ node: string; usedPercent: number }>
  count: number
  thresholdPercent: number
}

/** An image on an eligible node, but in a containerd namespace the kubelet does not see. */
export interface WrongPlace {
  node: string
  /** containerd namespace, e.g. `default`. */
  namespace: string
  /** The name containerd stores it under there. */
  name: string
}

export interface Subject {
  kind: string
  namespace: string
  name: string
  operation: string
}

export interface DecideInput {
  subject: Subject
  template: PodTemplateFacts
  /** The template before an UPDATE; undefined on CREATE. */
  previous?: PodTemplateFacts | null
  mode: Mode
  now: number
  /** The registries the nodes can pull from in this namespace; default any (`*`). */
  pullable?: PullableRegistries
  /** Set when the namespace steers pods: partial presence in a workload becomes a notice. */
  steer?: SteerPolicy
  /**
   * A Pod that has not been through the apiserver's RuntimeClass admission (an offline
   * manifest): merge its RuntimeClass as for templates. Admitted Pods arrive merged.
   */
  mergePods?: boolean
  /** The kubelets' image GC settings: warn about unpinned images on nodes GC is about to clean. */
  imageGc?: ImageGcPolicy
}

export type Verdict = 'allow' | 'warn' | 'deny'

/**
 * Something about the whole object that keeps its findings from denying:
 * - `idle`: it creates no pod now (detail: the Idle reason);
 * - `toleration-operator`: a toleration uses an operator this webhook cannot know the
 *   scheduler serves (detail: the operator);
 * - `runtime-class-not-found`: the RuntimeClass named does not exist, so its pods will be
 *   rejected (detail: the name);
 * - `runtime-class-unknown`: the inventory does not hold the RuntimeClass, so its scheduling
 *   is unknown (detail: the name);
 * - `runtime-class-conflict`: its nodeSelector conflicts with the template's, so its pods
 *   will be rejected (detail: the plugin's words);
 * - `namespace-unseen`: the namespace is newer than the inventory's list of them (created in
 *   the same `kubectl apply`), so its mode label, which may say warn or off, is not known
 *   yet: the enforce mode must not deny on that (detail: the namespace).
 * The three RuntimeClass notes are warned about even when every image is in place.
 */
export type NoteReason =
  | 'idle'
  | 'toleration-operator'
  | 'runtime-class-not-found'
  | 'runtime-class-unknown'
  | 'runtime-class-conflict'
  | 'namespace-unseen'

export interface Note {
  reason: NoteReason
  detail: string
}

export interface Decision {
  mode: Mode
  /** What the checks found before the mode was applied. */
  outcome: Verdict
  /** What the request gets: audit and warn never deny. */
  verdict: Verdict
  findings: Finding[]
  /** Why findings that would deny only warn; empty when nothing held them back. */
  notes: Note[]
}

export const NAMES_SHOWN = 3

const EMPTY: NodeList = Object.freeze({ names: [], count: 0 })

/**
 * The first NAMES_SHOWN nodes of bits less `without` and `without2`, of `count` in all: one
 * word walk that stops at the last name shown. `slots` is working space, overwritten here.
 */
function names(
  view: InventoryView,
  bits: Bits,
  without: Bits | undefined,
  without2: Bits | undefined,
  count: number,
  slots: Uint32Array,
): NodeList {
  if (count === 0) return EMPTY
  return { names: namesOf(view, slots, bitsFirst(bits, without, without2, slots)), count }
}

/** The names of the first n (up to 3) slots, in an array of exactly that length. */
function namesOf(view: InventoryView, slots: ArrayLike<number>, n: number): string[] {
  if (n === 0) return []
  const a = view.nameOf(slots[0]!)
  if (n === 1) return [a]
  const b = view.nameOf(slots[1]!)
  if (n === 2) return [a, b]
  return [a, b, view.nameOf(slots[2]!)]
}

/** The same names sorted as strings, as Array.prototype.sort would, without its working copy. */
function sortedNamesOf(view: InventoryView, slots: readonly number[]): string[] {
  const out = namesOf(view, slots, slots.length)
  for (let i = 1; i < out.length; i++) {
    const v = out[i]!
    let j = i - 1
    for (; j >= 0 && out[j]! > v; j--) out[j + 1] = out[j]!
    out[j + 1] = v
  }
  return out
}

/** The namespace label wins over the global mode. */
export function resolveMode(view: InventoryView, namespace: string, global: Mode): Mode {
  return view.namespaceMode(namespace) ?? global
}

export function isNever(c: ContainerFacts): boolean {
  return c.pullPolicy === 'Never'
}

/**
 * A pod template container may have no image: other admission or tooling fills it in (the
 * apiserver requires it of Pods only, pkg/apis/core/validation validateContainersOnlyForPod;
 * OpenShift's image triggers use " "). Not ours to judge; a Pod never gets here without one.
 */
function hasImage(c: ContainerFacts): boolean {
  return c.image !== '' && c.image.trim() !== ''
}

/**
 * The policy the kubelet applies: the container's, or for a manifest without one (the
 * offline check) the apiserver's default: Always for tag latest, explicit or implied by
 * neither tag nor digest, else IfNotPresent. Undefined for a value the apiserver rejects.
 */
export function effectivePolicy(c: ContainerFacts): PullPolicy | undefined {
  const p = c.pullPolicy
  if (p === 'Never' || p === 'IfNotPresent' || p === 'Always') return p
  if (p !== '') return undefined
  const parsed = lookupKey(c.image)
  if (!parsed.ok || parsed.ref === undefined) return undefined
  const { tag, digest } = parsed.ref
  return tag === 'latest' || (tag === undefined && digest === undefined) ? 'Always' : 'IfNotPresent'
}

/** The registry of a container the pullable-registries rule judges, else undefined (not checked). */
export function unpullableRegistry(pullable: PullableRegistries, c: ContainerFacts): string | undefined {
  if (pullable.any) return undefined
  const registry = registryOf(c.image)
  return registry === undefined || isPullable(pullable, registry) ? undefined : registry
}

/** True when the template needs its placement read: a Never container, or one the pullable rule judges. */
export function needsCheck(pullable: PullableRegistries, c: ContainerFacts): boolean {
  if (isNever(c)) return true
  return !pullable.any && unpullableRegistry(pullable, c) !== undefined && effectivePolicy(c) !== undefined
}

/** The previous template's containers by kind and name, so an UPDATE is compared in linear time. */
function containersByName(previous: PodTemplateFacts | null | undefined): Map<string, ContainerFacts> | undefined {
  if (previous === undefined || previous === null) return undefined
  const byName = new Map<string, ContainerFacts>()
  for (const p of previous.containers) {
    const key = `${p.kind}\u0000${p.name}`
    if (!byName.has(key)) byName.set(key, p)
  }
  return byName
}

/**
 * An UPDATE that changes where a controller's pods may run (nodeSelector, node affinity,
 * tolerations, nodeName, RuntimeClass): the pods the rollout creates go to the new places,
 * so every image matters there as if just written, though no container changed. Not a Pod:
 * an updated Pod stays on its node.
 */
function movedPods(template: PodTemplateFacts, previous: PodTemplateFacts | null | undefined): boolean {
  if (previous === undefined || previous === null || template.kind === 'Pod') return false
  return (
    template.runtimeClassName !== previous.runtimeClassName ||
    !isDeepStrictEqual(template.placement, previous.placement)
  )
}

function changedContainer(c: ContainerFacts, previous: Map<string, ContainerFacts> | undefined): boolean {
  if (previous === undefined) return true
  const p = previous.get(`${c.kind}\u0000${c.name}`)
  return p === undefined || p.image !== c.image || p.pullPolicy !== c.pullPolicy
}

/** Images the nodes hold that the person may have meant (remembered by the index until they change). */
export function suggest(view: InventoryView, key: string): string[] {
  const repository = repositoryOfKey(key)
  if (repository === undefined) return []
  // Frozen: one answer is shared by every finding that asks until the repository changes.
  return view.memoByRepository(repository, key, () => Object.freeze(rankSuggestions(view, key, repository)) as string[])
}

function rankSuggestions(view: InventoryView, key: string, repository: string): string[] {
  const wanted = key.includes('@')
  const same = view.repositoryKeys(repository)
  if (same !== undefined && same.size > 0) {
    const candidates: string[] = []
    for (const k of same) if (k !== key && k.includes('@') === wanted) candidates.push(k)
    if (candidates.length === 0) for (const k of same) if (k !== key) candidates.push(k)
    // Tags are at most 128 characters, so every candidate of the same repository is within reach;
    // all share the repository, so only what follows it is compared.
    return nearest(key, candidates, 256, NAMES_SHOWN, repository.length).map(shortRef)
  }
  const out: string[] = []
  const tail = key.slice(repository.length)
  for (const repo of nearest(repository, view.repositories(), 2, NAMES_SHOWN)) {
    const keys = view.repositoryKeys(repo)
    if (keys === undefined) continue
    if (keys.has(repo + tail)) {
      out.push(shortRef(repo + tail))
      continue
    }
    for (const k of keys) {
      if (!k.includes('@')) {
        out.push(shortRef(k))
        break
      }
    }
  }
  return out
}

/**
 * Podman and Buildah store local builds as `localhost/NAME:TAG` (on CRI-O nodes that is how
 * `podman build -t myapp:dev` lands): a short name whose localhost spelling some node holds
 * is the likeliest meaning, so it comes first.
 */
function withLocalhost(view: InventoryView, image: string, others: string[]): string[] {
  const local = localhostKey(image)
  if (local === undefined || view.nodesWithImage(local) === undefined) return others
  return [local, ...others.filter((o) => o !== local)].slice(0, NAMES_SHOWN)
}

/**
 * Image IDs a truncated ID could mean, each cut to the shortest form (at least 12 hex) that
 * tells it from the others: more than one on a node is why containerd refuses the prefix.
 */
export function distinctIds(ids: string[]): string[] {
  if (ids.length <= 1 || ids.length > NAMES_SHOWN) return ids.length === 1 ? [shortRef(ids[0]!)] : []
  return ids.map((id) => {
    const colon = id.indexOf(':')
    let n = colon + 13
    while (n < id.length && ids.some((o) => o !== id && o.startsWith(id.slice(0, n)))) n++
    return id.slice(0, n)
  })
}

// check()'s roles in view.scratch (placement takes 0 to 5), held for one decide() call.
const STALE = 8
const PRESENT = 9
const UNSURE = 10
const MISSING = 11
/** decide()'s eligible nodes: no finding keeps them. */
const ELIGIBLE = 12
/** The slots of the nodes being named. */
const SLOTS = 13

/**
 * What every checked container of one decide() call shares, worked out once: the eligible
 * nodes cut at their last non-empty word (every word loop stops there), and when an image is
 * not on all of them, the eligible nodes without a current image list and how many, and a
 * working bitset of that length. One per call; its bitsets are the index's scratch, so it
 * must not outlive the call.
 */
class Survey {
  /** Eligible nodes, up to the last word that has one. */
  readonly eligible: Bits
  /** Eligible nodes whose image list is missing or stale; once an image is not on every eligible node. */
  stale: Bits | undefined
  staleCount = 0
  /** Per container: the eligible nodes that have its image, when its node set is a short list. */
  readonly present: Bits
  /** Slots being named (names()). */
  readonly slots: Uint32Array

  constructor(
    readonly view: InventoryView,
    readonly where: Eligibility,
    readonly fresh: Bits,
  ) {
    const all = where.nodes
    let end = Math.min(all.length, where.span ?? all.length)
    while (end > 0 && all[end - 1] === 0) end--
    this.eligible = all.subarray(0, end)
    this.present = this.bits(PRESENT)
    this.slots = view.scratch.get(SLOTS, NAMES_SHOWN)
  }

  /** The first time an image is not on every eligible node: the stale set and its count. */
  partial(): void {
    if (this.stale !== undefined) return
    this.stale = this.bits(STALE)
    this.staleCount = bitsAndNotCount(this.eligible, this.fresh, this.stale)
  }

  /** The scratch bitset for a role, as long as the eligible set. */
  bits(role: number): Bits {
    return this.view.scratch.get(role, this.where.nodes.length).subarray(0, this.eligible.length)
  }
}

/** Every finding has this one shape, built here only: a fixed shape keeps the hot path monomorphic. */
function finding(c: ContainerFacts, reason: Reason, severity: Severity, eligible: number): Finding {
  return {
    container: c,
    reason,
    severity,
    changed: true,
    key: undefined,
    error: undefined,
    eligible,
    present: EMPTY,
    missing: EMPTY,
    unknown: EMPTY,
    elsewhere: EMPTY,
    suggestions: NO_SUGGESTIONS,
    nodeName: undefined,
    scheduler: undefined,
    policy: 'Never',
    registry: undefined,
    presence: undefined,
    wrongPlace: NO_WRONG_PLACE,
    wrongPlaceCount: 0,
    missingOnCrio: 0,
    gcRisk: undefined,
  }
}

const NO_WRONG_PLACE: WrongPlace[] = Object.freeze([]) as unknown as WrongPlace[]

const NO_SUGGESTIONS: string[] = Object.freeze([]) as unknown as string[]

function check(survey: Survey, c: ContainerFacts, perNode: boolean): Finding {
  const { view, where } = survey
  const parsed = view.lookups.key(c.image)
  if (!parsed.ok) {
    const f = finding(c, 'invalid-reference', 'deny', where.count)
    f.error = parsed.error
    return f
  }
  const key = parsed.key
  if (where.unknownNodeName !== undefined) {
    const f = finding(c, 'unknown-node', 'warn', where.count)
    f.key = key
    f.nodeName = where.unknownNodeName
    return f
  }
  if (where.count === 0) {
    const f = finding(c, 'no-eligible-nodes', 'warn', 0)
    f.key = key
    f.scheduler = where.scheduler
    return f
  }

  const E = survey.eligible
  const slots = survey.slots
  const H = view.nodesResolving(parsed, survey.fresh)
  // One counting pass over the eligible words: all the allowed path needs.
  const have = H === undefined ? 0 : H.countIn(E)
  if (have === where.count) {
    const f = finding(c, 'present', 'ok', where.count)
    f.key = key
    f.present = names(view, E, undefined, undefined, have, slots)
    return f
  }
  // P: the nodes that have it, read only within E (so E ∩ P is the eligible nodes that have
  // it). An image on many nodes is a bitset already, used as it is; a short list is written
  // out as its eligible part.
  let P: Bits
  if (H === undefined) P = NO_BITS
  else {
    const dense = H.bits
    if (dense !== null) P = dense
    else H.intersectInto(E, (P = survey.present))
  }
  survey.partial()
  // Eligible nodes without a current image list (the same for every container), not counting
  // those where Node.status.images already proves the image is present.
  let stale = survey.stale!
  let staleCount = survey.staleCount
  // Nodes whose runtime's way of resolving this name is not known count as unknown too.
  const unsure = view.nodesUnsure(parsed)
  if (unsure !== undefined) {
    stale = survey.bits(UNSURE)
    stale.set(survey.stale!)
    unsure.orInto(stale)
    bitsAnd(stale, E)
    staleCount = bitsCount(stale)
  }
  const unknownCount = staleCount === 0 ? 0 : staleCount - bitsCountAnd(stale, P)
  const missingCount = where.count - have - unknownCount
  let reason: Reason
  let severity: Severity
  if (have > 0) {
    reason = 'partial'
    severity = perNode && missingCount > 0 ? 'deny' : 'warn'
  } else if (unknownCount > 0) {
    reason = 'unknown'
    severity = 'warn'
  } else {
    reason = 'missing'
    severity = 'deny'
  }
  const f = finding(c, reason, severity, where.count)
  f.key = key
  f.present = have === 0 ? EMPTY : { names: namesOf(view, slots, bitsFirstIn(E, P, slots)), count: have }
  const known = staleCount === 0 ? undefined : stale
  f.missing = names(view, E, P, known, missingCount, slots)
  const crio = missingCount > 0 ? view.crioNodes() : undefined
  if (crio !== undefined) {
    const missing = survey.bits(MISSING)
    missing.set(E)
    bitsAndNot(missing, P)
    if (known !== undefined) bitsAndNot(missing, known)
    f.missingOnCrio = bitsCountAnd(missing, crio)
  }
  f.unknown = names(view, stale, P, undefined, unknownCount, slots)
  if (H !== undefined && H.size > have) {
    const outside: number[] = []
    H.firstOutside(E, NAMES_SHOWN, outside)
    f.elsewhere = { names: sortedNamesOf(view, outside), count: H.size - have }
  }
  const held = view.imagesElsewhere(key)
  if (held !== undefined) {
    const wrong: WrongPlace[] = []
    const counted = new Set<number>()
    for (const h of held) {
      if (!bitsHas(E, h.slot) || bitsHas(P, h.slot) || counted.has(h.slot)) continue
      counted.add(h.slot)
      if (wrong.length < NAMES_SHOWN) wrong.push({ node: view.nameOf(h.slot), namespace: h.namespace, name: h.name })
    }
    wrong.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0))
    f.wrongPlace = wrong
    f.wrongPlaceCount = counted.size
  }
  if (reason === 'missing') {
    // A truncated ID on no node: the IDs it could mean (two on one node is why it fails there).
    f.suggestions =
      parsed.idPrefix === undefined
        ? withLocalhost(view, c.image, suggest(view, key))
        : distinctIds(view.idsWithPrefix(parsed, NAMES_SHOWN + 1))
  }
  return f
}

/**
 * Eligible nodes where the image is present, not pinned, on an image filesystem at or above
 * the kubelet's high threshold: there the image GC deletes unused unpinned images, oldest
 * use first, until usage is below the low threshold. Nothing to do unless a node is that full.
 */
export function gcRisk(
  view: InventoryView,
  image: string,
  where: Eligibility,
  thresholdPercent: number,
): GcRisk | undefined {
  const full = view.nodesAtUsage(thresholdPercent)
  if (full === undefined || where.count === 0) return undefined
  const parsed = lookupKey(image)
  if (!parsed.ok) return undefined
  const H = view.nodesResolving(parsed)
  if (H === undefined) return undefined
  const at: Array<{ node: string; usedPercent: number }> = []
  bitsForEach(full, (slot) => {
    if (bitsHas(where.nodes, slot) && H.has(slot) && !view.isPinned(slot, parsed.key)) {
      at.push({ node: view.nameOf(slot), usedPercent: view.imageFilesystem(slot)?.usedPercent ?? thresholdPercent })
    }
    return true
  })
  if (at.length === 0) return undefined
  at.sort((a, b) => b.usedPercent - a.usedPercent || (a.node < b.node ? -1 : 1))
  return { nodes: at.slice(0, NAMES_SHOWN), count: at.length, thresholdPercent }
}

/** Eligible nodes that hold the image without pinning it (audit: idle workloads and --image-maximum-gc-age). */
export function unpinnedHolders(
  view: InventoryView,
  image: string,
  placement: PodTemplateFacts['placement'],
): string[] {
  const parsed = lookupKey(image)
  if (!parsed.ok) return []
  const H = view.nodesResolving(parsed)
  if (H === undefined) return []
  const where = eligibleNodes(view, placement)
  const out: string[] = []
  H.forEach((slot) => {
    if (bitsHas(where.nodes, slot) && !view.isPinned(slot, parsed.key)) out.push(view.nameOf(slot))
  })
  return out.sort()
}

function worst(a: Verdict, b: Severity): Verdict {
  if (a === 'deny' || b === 'deny') return 'deny'
  if (a === 'warn' || b === 'warn') return 'warn'
  return 'allow'
}

const NO_NOTES: Note[] = Object.freeze([]) as unknown as Note[]

/**
 * Where the template's pods will be placed, and what holds every denial back, before any
 * image is looked at.
 */
function prepare(
  view: InventoryView,
  template: PodTemplateFacts,
  mergePods: boolean,
  update: boolean,
): { placement: Placement; notes: Note[] } {
  let notes: Note[] | undefined
  let placement = template.placement
  if (template.idle !== undefined) (notes ??= []).push({ reason: 'idle', detail: template.idle })
  // An UPDATE of an OnDelete or fully partitioned template replaces no pod: the operator
  // loads the image and deletes pods (or lowers the partition) node by node afterwards.
  else if (update && template.heldRollout !== undefined)
    (notes ??= []).push({ reason: 'idle', detail: template.heldRollout })
  const runtimeClassName = template.runtimeClassName
  if (runtimeClassName !== undefined && (template.kind !== 'Pod' || mergePods)) {
    const runtimeClass = view.runtimeClass(runtimeClassName)
    if (runtimeClass === undefined) {
      ;(notes ??= []).push({
        reason: view.runtimeClassesComplete ? 'runtime-class-not-found' : 'runtime-class-unknown',
        detail: runtimeClassName,
      })
    } else {
      const merged = mergeRuntimeClass(placement, runtimeClass, template.perNode)
      if (merged.ok) placement = merged.placement
      else (notes ??= []).push({ reason: 'runtime-class-conflict', detail: merged.conflict })
    }
  }
  // Lt/Gt (TaintTolerationComparisonOperators, alpha in 1.35) are evaluated as the scheduler
  // that serves them does, but whether this cluster's scheduler does cannot be seen from here.
  for (const t of placement.tolerations) {
    if (!isBasicTolerationOperator(t.operator)) {
      ;(notes ??= []).push({ reason: 'toleration-operator', detail: t.operator ?? '' })
      break
    }
  }
  return { placement, notes: notes ?? NO_NOTES }
}

function isRuntimeClassNote(n: Note): boolean {
  return (
    n.reason === 'runtime-class-not-found' ||
    n.reason === 'runtime-class-unknown' ||
    n.reason === 'runtime-class-conflict'
  )
}

/**
 * The pods of a workload in a steering namespace will be limited to the nodes that hold
 * their images: a partial presence is then no failure to come but a notice of where they
 * go, on the same rules as the mutating webhook (steer.ts), so the notice never promises
 * what the mutation will not do. Steering follows Never images only: a partial IfNotPresent
 * image from an unpullable registry keeps its warning. Returns the outcome afterwards.
 */
function steered(
  view: InventoryView,
  template: PodTemplateFacts,
  findings: Finding[],
  policy: SteerPolicy,
  now: number,
): Verdict {
  const partial = (f: Finding): boolean => f.reason === 'partial' && f.policy === 'Never'
  if (!findings.some(partial)) return 'warn'
  const target = steeringTarget(view, template.placement, neverImages(template), policy, now)
  if (!target.steer) return 'warn'
  let outcome: Verdict = 'allow'
  for (const f of findings) {
    if (partial(f)) {
      f.reason = 'steered'
      f.severity = 'ok'
      f.present = names(view, target.nodes, undefined, undefined, target.count, new Uint32Array(NAMES_SHOWN))
      f.missing = EMPTY
      f.unknown = EMPTY
    }
    outcome = worst(outcome, f.severity)
  }
  return outcome
}

export function decide(view: InventoryView, input: DecideInput): Decision {
  const { template, previous, mode } = input
  const findings: Finding[] = []
  if (mode === 'off') return { mode, outcome: 'allow', verdict: 'allow', findings, notes: NO_NOTES }

  let where: Eligibility | undefined
  let survey: Survey | undefined
  let notes: Note[] = NO_NOTES
  let placement = template.placement
  let before: Map<string, ContainerFacts> | undefined | null = null
  let moved = false
  let outcome: Verdict = 'allow'
  const pullable = input.pullable ?? ANY_REGISTRY
  // --image-gc-high-threshold=100 turns the kubelet's disk-based image GC off.
  const gcAt =
    input.imageGc !== undefined && input.imageGc.highThresholdPercent < 100
      ? input.imageGc.highThresholdPercent
      : undefined
  for (const c of template.containers) {
    let policy: PullPolicy = 'Never'
    let registry: string | undefined
    if (!isNever(c)) {
      // With the default `*` this is one property read per container: the allow path stays fast.
      if (pullable.any) continue
      registry = unpullableRegistry(pullable, c)
      if (registry === undefined) continue
      const p = effectivePolicy(c)
      if (p === undefined) continue
      policy = p
    } else if (!hasImage(c)) continue
    if (where === undefined) {
      moved = movedPods(template, previous)
      const prepared = prepare(view, template, input.mergePods === true, previous !== undefined && previous !== null)
      notes = prepared.notes
      if (mode === 'enforce' && view.namespaceUnseen(input.subject.namespace))
        notes = [...notes, { reason: 'namespace-unseen', detail: input.subject.namespace }]
      placement = prepared.placement
      where = eligibleNodes(view, placement, view.scratch.get(ELIGIBLE, view.words))
      survey = new Survey(view, where, view.freshNodes(input.now))
      before = containersByName(previous)
    }
    // An object that ran nothing and now runs pods (replicas 0 -> 3, suspend true -> false):
    // every image starts to matter, as if just written. Not a resumed Deployment: if its
    // template is the one its pods already run (paused, then resumed unchanged), resuming
    // creates nothing new, and an UPDATE cannot tell; a container changed with it still counts.
    const waking =
      previous !== undefined &&
      previous !== null &&
      previous.idle !== undefined &&
      previous.idle !== 'paused' &&
      template.idle === undefined
    const changed = waking || moved || changedContainer(c, before ?? undefined)
    const f = check(survey!, c, template.perNode)
    f.changed = changed
    f.policy = policy
    f.registry = registry
    if (policy === 'Always' && f.reason !== 'invalid-reference') {
      // Present or not, the kubelet asks the registry on every start and fails with ErrImagePull.
      f.presence = f.reason
      f.reason = 'unpullable'
      f.severity = 'deny'
    }
    if (gcAt !== undefined && (f.reason === 'present' || f.reason === 'partial')) {
      const risk = gcRisk(view, c.image, where, gcAt)
      if (risk !== undefined) {
        f.gcRisk = risk
        if (f.severity === 'ok') f.severity = 'warn'
      }
    }
    // A denial needs a change the person just made; what already runs (or a mirror of a
    // static pod the kubelet already started) is only ever warned about, and so is what
    // runs nothing yet or whose placement is not certain.
    if (f.severity === 'deny' && (!changed || template.mirror || notes.length > 0)) f.severity = 'warn'
    findings.push(f)
    outcome = worst(outcome, f.severity)
  }
  const steers =
    input.steer !== undefined &&
    !notes.some(isRuntimeClassNote) &&
    (STEERED_WORKLOAD_KINDS.has(template.kind) ||
      (input.steer.pods === true && template.kind === 'Pod' && !template.mirror))
  if (steers && outcome === 'warn') {
    // Steer by where the pods will really go: the RuntimeClass merged in.
    outcome = steered(
      view,
      placement === template.placement ? template : { ...template, placement },
      findings,
      input.steer!,
      input.now,
    )
  }
  // A note explains a finding; alone it says nothing worth a warning, except that the
  // RuntimeClass is missing, unknown or in conflict: its pods are rejected or placed unseen.
  if (outcome === 'allow' && notes.length > 0) {
    notes = notes.filter(isRuntimeClassNote)
    if (notes.length > 0) outcome = 'warn'
  }
  let verdict: Verdict = outcome
  if (mode === 'warn' && verdict === 'deny') verdict = 'warn'
  if (mode === 'audit') verdict = 'allow'
  return { mode, outcome, verdict, findings, notes }
}
