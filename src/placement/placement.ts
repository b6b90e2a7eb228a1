import type { InventoryView } from '../inventory/inventory-index.js'
import {
  bitsAnd,
  bitsAndNot,
  bitsClear,
  bitsCount,
  bitsForEach,
  bitsHas,
  bitsOr,
  bitsSet,
  popcount32,
  type Bits,
} from '../util/node-set.js'
import {
  parseInt64,
  toleratesAny,
  UNSCHEDULABLE_TAINT,
  type NodeSelectorRequirement,
  type NodeSelectorTerm,
  type Placement,
} from '../api/scheduling.js'

// Where a pod may land, by the scheduler's filter rules (pkg/scheduler/framework/plugins:
// NodeName, NodeAffinity, TaintToleration, NodeUnschedulable). Only filters count: scores
// (preferred affinity, ImageLocality) never make a node ineligible.

export interface Eligibility {
  nodes: Bits
  count: number
  /** When known: no eligible node lies past this many words of nodes. */
  span?: number
  /** `nodeName` names a node the inventory does not know. */
  unknownNodeName?: string
  /** When no node fits: why, in the scheduler's words (schedulerSentence). */
  scheduler?: string
}

/** apimachinery validation.IsValidLabelValue: at most 63 characters, alphanumeric at both ends. */
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/

/**
 * Keeps in target only the nodes matching one label requirement; target holds nodes the
 * index has, so a requirement that removes nodes is applied as it is, without first writing
 * out the nodes it matches. `scratch` (as long as target) is working space for the forms
 * that match a union (In with several values, Gt, Lt).
 */
function matchLabel(view: InventoryView, r: NodeSelectorRequirement, target: Bits, scratch: Bits): void {
  const values = r.values ?? []
  // labels.NewRequirement checks every value is a label value (`-1`, `a/b`, 64 characters
  // are not), which the apiserver's own validation of node affinity does not; one that is
  // not fails the whole term (component-helpers nodeaffinity newNodeSelectorTerm: parseErrs).
  for (const v of values) {
    if (!LABEL_VALUE.test(v)) {
      target.fill(0)
      return
    }
  }
  switch (r.operator) {
    case 'In': {
      if (values.length === 1) {
        const bits = view.labelValue(r.key, values[0]!)
        if (bits === undefined) target.fill(0)
        else bitsAnd(target, bits)
        return
      }
      scratch.fill(0)
      for (const v of values) {
        const bits = view.labelValue(r.key, v)
        if (bits !== undefined) bitsOr(scratch, bits)
      }
      bitsAnd(target, scratch)
      return
    }
    case 'NotIn':
      for (const v of values) {
        const bits = view.labelValue(r.key, v)
        if (bits !== undefined) bitsAndNot(target, bits)
      }
      return
    case 'Exists': {
      const bits = view.labelKey(r.key)
      if (bits === undefined) target.fill(0)
      else bitsAnd(target, bits)
      return
    }
    case 'DoesNotExist': {
      const bits = view.labelKey(r.key)
      if (bits !== undefined) bitsAndNot(target, bits)
      return
    }
    case 'Gt':
    case 'Lt': {
      // apimachinery labels.NewRequirement / Requirement.Matches: exactly one value, and it
      // and the node's label both parse with strconv.ParseInt(v, 10, 64). A requirement value
      // that does not parse makes the whole term fail (component-helpers nodeaffinity
      // newNodeSelectorTerm); a label that does not parse (overflow included) never matches.
      scratch.fill(0)
      const bound = values.length === 1 ? parseInt64(values[0]!) : undefined
      const byValue = bound === undefined ? undefined : view.labelValues(r.key)
      if (byValue !== undefined) {
        for (const [value, bits] of byValue) {
          const n = parseInt64(value)
          if (n === undefined) continue
          if (r.operator === 'Gt' ? n > bound! : n < bound!) {
            if (typeof bits === 'number') setWithin(scratch, bits)
            else bitsOr(scratch, bits)
          }
        }
      }
      bitsAnd(target, scratch)
      return
    }
    default:
      target.fill(0)
      return
  }
}

/** bitsSet, for a slot that may lie past the end of bits (then nothing). */
function setWithin(bits: Bits, slot: number): void {
  if (slot >>> 5 < bits.length) bitsSet(bits, slot)
}

/** matchFields supports only metadata.name with In / NotIn: keeps in target the nodes it matches. */
function matchField(view: InventoryView, r: NodeSelectorRequirement, target: Bits, scratch: Bits): void {
  if (r.key === 'metadata.name' && r.operator === 'In') {
    scratch.fill(0)
    for (const name of r.values ?? []) {
      const slot = view.slotOf(name)
      if (slot !== undefined) setWithin(scratch, slot)
    }
    bitsAnd(target, scratch)
  } else if (r.key === 'metadata.name' && r.operator === 'NotIn') {
    for (const name of r.values ?? []) {
      const slot = view.slotOf(name)
      if (slot !== undefined) bitsClear(target, slot)
    }
  } else target.fill(0)
}

/**
 * Keeps in target only the nodes one node selector term matches (every requirement). An
 * empty term matches no objects (component-helpers nodeaffinity).
 */
function matchTerm(view: InventoryView, t: NodeSelectorTerm, target: Bits, scratch: Bits): void {
  const expressions = t.matchExpressions ?? []
  const fields = t.matchFields ?? []
  if (expressions.length === 0 && fields.length === 0) {
    target.fill(0)
    return
  }
  for (const r of expressions) matchLabel(view, r, target, scratch)
  for (const r of fields) matchField(view, r, target, scratch)
}

// Scratch roles this module takes from view.scratch (ScratchBits); decide uses others.
const REQUIREMENT = 0
const UNION = 1
const TERM = 2
const REMAINING = 3
/** For the one-pass filters: a bitset of no node, and one of every node. */
const NONE = 4
const EVERY = 5

/**
 * The scheduler's filter plugins this webhook models, in the scheduler's own order
 * (pkg/scheduler/apis/config/v1 default_plugins.go: NodeUnschedulable, NodeName,
 * TaintToleration, NodeAffinity). A node is rejected by the first filter that fails it.
 */
export type FilterName = 'NodeUnschedulable' | 'NodeName' | 'TaintToleration' | 'NodeAffinity'

interface FilterStage {
  name: FilterName
  /** Keeps in `nodes` only the nodes this filter lets through. */
  apply(view: InventoryView, placement: Placement, nodes: Bits): void
}

/** NodeUnschedulable: a cordoned node, unless the pod tolerates node.kubernetes.io/unschedulable:NoSchedule. */
function nodeUnschedulable(view: InventoryView, placement: Placement, nodes: Bits): void {
  if (!toleratesAny(placement.tolerations, UNSCHEDULABLE_TAINT)) bitsAndNot(nodes, view.cordoned())
}

/** NodeName: for a DaemonSet template's nodeName (a bound pod never reaches the filters). */
function nodeName(view: InventoryView, placement: Placement, nodes: Bits): void {
  if (placement.nodeName === undefined || placement.nodeName === '') return
  const slot = view.slotOf(placement.nodeName)
  const keep = slot !== undefined && bitsHas(nodes, slot)
  nodes.fill(0)
  if (keep) bitsSet(nodes, slot)
}

/** TaintToleration: every NoSchedule and NoExecute taint must be tolerated. */
function taintToleration(view: InventoryView, placement: Placement, nodes: Bits): void {
  for (const group of view.taintGroups()) {
    if (!toleratesAny(placement.tolerations, group.taint)) bitsAndNot(nodes, group.nodes)
  }
}

/** NodeAffinity: spec.nodeSelector and the required node affinity terms. */
function nodeAffinity(view: InventoryView, placement: Placement, nodes: Bits): void {
  const words = view.words
  const selector = placement.nodeSelector
  if (selector !== undefined) {
    for (const key in selector) {
      const bits = view.labelValue(key, selector[key]!)
      if (bits === undefined) {
        nodes.fill(0)
        return
      }
      bitsAnd(nodes, bits)
    }
  }
  const terms = placement.requiredTerms
  if (terms === undefined) return
  // Working bitsets as long as the nodes being filtered (which stop at the last word that
  // holds a node).
  const scratch = view.scratch.get(REQUIREMENT, words).subarray(0, nodes.length)
  if (terms.length === 1) {
    matchTerm(view, terms[0]!, nodes, scratch)
    return
  }
  // Terms are ORed: nodes ∩ (t1 ∪ t2 ...) = (nodes ∩ t1) ∪ (nodes ∩ t2) ...
  const union = view.scratch.get(UNION, words).subarray(0, nodes.length)
  const term = view.scratch.get(TERM, words).subarray(0, nodes.length)
  union.fill(0)
  for (const t of terms) {
    term.set(nodes)
    matchTerm(view, t, term, scratch)
    bitsOr(union, term)
  }
  nodes.set(union)
}

const STAGES: readonly FilterStage[] = [
  { name: 'NodeUnschedulable', apply: nodeUnschedulable },
  { name: 'NodeName', apply: nodeName },
  { name: 'TaintToleration', apply: taintToleration },
  { name: 'NodeAffinity', apply: nodeAffinity },
]

export const FILTER_ORDER: readonly FilterName[] = STAGES.map((s) => s.name)

/**
 * The nodes a pod with this placement may be scheduled to, by the scheduler's filters. They
 * are written into `into` when given (view.words long, e.g. a scratch bitset of a caller that
 * is done with the answer before the next call; allocating 1 KiB per request costs more than
 * the filters), else into a new bitset.
 */
export function eligibleNodes(view: InventoryView, placement: Placement, into?: Bits): Eligibility {
  const words = view.words
  let nodes: Bits
  if (into === undefined || into.length !== words) nodes = new Uint32Array(words)
  else (nodes = into).fill(0)
  if (placement.nodeName !== undefined && placement.nodeName !== '') {
    const slot = view.slotOf(placement.nodeName)
    if (slot === undefined || view.node(slot) === undefined) {
      return { nodes, count: 0, unknownNodeName: placement.nodeName }
    }
    // A bound pod skips the scheduler: that node, whatever the filters would say.
    if (placement.nodeNameFiltered !== true) {
      bitsSet(nodes, slot)
      return { nodes, count: 1 }
    }
  }
  const all = view.nodes()
  // The bitsets are as long as the index's capacity, which doubles: the filters stop at the
  // last word that holds a node (at 5,000 nodes, 157 of 256 words).
  let end = Math.min(all.length, words)
  while (end > 0 && all[end - 1] === 0) end--
  const used = end === words ? nodes : nodes.subarray(0, end)
  let count: number
  if (placement.nodeName === undefined || placement.nodeName === '') count = filtered(view, placement, all, used)
  else {
    used.set(all.subarray(0, end))
    for (const stage of STAGES) stage.apply(view, placement, used)
    count = bitsCount(used)
  }
  if (count > 0) return { nodes, count, span: end }
  // Nothing fits: the rare path can afford to say why, filter by filter.
  return { nodes, count: 0, scheduler: schedulerSentence(explainPlacement(view, placement)) }
}

/**
 * The filters of a placement without nodeName, in one pass where it can: every filter but
 * the required affinity terms only removes the nodes of a bitset (cordoned, a taint not
 * tolerated) or keeps those of one (a nodeSelector label), and they commute, so up to three
 * of the first kind and two of the second are applied to each word together and counted;
 * any more, and the terms, after. Writes the eligible nodes into out (as long as the words
 * that hold a node) and returns how many.
 */
function filtered(view: InventoryView, placement: Placement, all: Bits, out: Bits): number {
  const end = out.length
  // Masks that change nothing, for the places no filter takes: no node, every node (as long
  // as out, filled before the pass).
  const none = view.scratch.get(NONE, end)
  const every = view.scratch.get(EVERY, end)
  let not0 = none
  let not1 = none
  let not2 = none
  let and0 = every
  let and1 = every
  let nots = 0
  let ands = 0
  let more: Array<{ bits: Bits; keep: boolean }> | undefined
  const tolerations = placement.tolerations
  // NodeUnschedulable and TaintToleration remove nodes, the nodeSelector of NodeAffinity keeps them.
  if (!toleratesAny(tolerations, UNSCHEDULABLE_TAINT)) {
    not0 = view.cordoned()
    nots = 1
  }
  for (const group of view.taintGroups()) {
    if (toleratesAny(tolerations, group.taint)) continue
    if (nots === 0) not0 = group.nodes
    else if (nots === 1) not1 = group.nodes
    else if (nots === 2) not2 = group.nodes
    else (more ??= []).push({ bits: group.nodes, keep: false })
    nots++
  }
  const selector = placement.nodeSelector
  if (selector !== undefined) {
    for (const key in selector) {
      const bits = view.labelValue(key, selector[key]!)
      if (bits === undefined) {
        out.fill(0)
        return 0
      }
      if (ands === 0) and0 = bits
      else if (ands === 1) and1 = bits
      else (more ??= []).push({ bits, keep: true })
      ands++
    }
  }
  let count = 0
  if (nots === 0 && ands === 0) {
    // Nothing to filter here (a DaemonSet tolerates the taints, and has no selector).
    out.set(all.subarray(0, end))
    count = bitsCount(out)
  } else {
    none.fill(0)
    every.fill(-1)
    for (let i = 0; i < end; i++) {
      const v = all[i]! & ~not0[i]! & ~not1[i]! & ~not2[i]! & and0[i]! & and1[i]!
      out[i] = v
      count += popcount32(v)
    }
  }
  const terms = placement.requiredTerms
  if (more === undefined && terms === undefined) return count
  for (const m of more ?? []) (m.keep ? bitsAnd : bitsAndNot)(out, m.bits)
  if (terms !== undefined) nodeAffinity(view, { tolerations, requiredTerms: terms }, out)
  return bitsCount(out)
}

/** What one filter did: how many nodes it was the first to reject, and why, as the scheduler says. */
export interface FilterResult {
  filter: FilterName
  removed: number
  /** The scheduler's reason, with how many of the removed nodes it was given for. */
  reasons: Map<string, number>
}

export interface PlacementReport {
  /** Nodes the scheduler would consider (every node the inventory holds). */
  total: number
  /** Each filter in the scheduler's order; a node counts under the first that rejects it. */
  filters: FilterResult[]
  /** Nodes left after every filter. */
  eligible: number
}

/** The scheduler's words for a node a filter rejects (its plugins' ErrReason strings). */
const REASONS: Record<Exclude<FilterName, 'TaintToleration'>, string> = {
  NodeUnschedulable: 'node(s) were unschedulable',
  NodeName: "node(s) didn't match the requested node name",
  NodeAffinity: "node(s) didn't match Pod's node affinity/selector",
}

/** The first NoSchedule/NoExecute taint the pod does not tolerate, in the node's order (FindMatchingUntoleratedTaint). */
function untoleratedTaintReason(view: InventoryView, placement: Placement, slot: number): string {
  for (const taint of view.node(slot)?.taints ?? []) {
    if (taint.effect !== 'NoSchedule' && taint.effect !== 'NoExecute') continue
    if (!toleratesAny(placement.tolerations, taint))
      return `node(s) had untolerated taint {${taint.key}: ${taint.value ?? ''}}`
  }
  return 'node(s) had untolerated taint'
}

/**
 * The filters one by one, in the scheduler's order, each counting the nodes it is the first
 * to reject. Slower than eligibleNodes (one pass per filter and a walk over the rejected
 * nodes); for messages when no node fits, and for the tools.
 */
export function explainPlacement(view: InventoryView, placement: Placement): PlacementReport {
  const words = view.words
  const remaining = view.scratch.get(REMAINING, words)
  remaining.set(view.nodes())
  const total = bitsCount(remaining)
  const filters: FilterResult[] = []
  let left = total
  const passed = new Uint32Array(words)
  for (const stage of STAGES) {
    passed.set(remaining)
    stage.apply(view, placement, passed)
    const kept = bitsCount(passed)
    const reasons = new Map<string, number>()
    if (kept < left) {
      if (stage.name === 'TaintToleration') {
        bitsForEach(remaining, (slot) => {
          if (bitsHas(passed, slot)) return
          const reason = untoleratedTaintReason(view, placement, slot)
          reasons.set(reason, (reasons.get(reason) ?? 0) + 1)
        })
      } else {
        reasons.set(REASONS[stage.name], left - kept)
      }
    }
    filters.push({ filter: stage.name, removed: left - kept, reasons })
    remaining.set(passed)
    left = kept
  }
  return { total, filters, eligible: left }
}

/**
 * `0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 3 node(s)
 * didn't match Pod's node affinity/selector.` as the scheduler's FitError says it (and
 * `kubectl describe pod` shows it): "COUNT REASON" entries sorted as strings, joined by ", ".
 */
export function schedulerSentence(report: PlacementReport): string {
  // ErrNoNodesAvailable (pkg/scheduler/schedule_one.go), before any filter runs.
  if (report.total === 0) return 'no nodes available to schedule pods'
  const entries: string[] = []
  for (const f of report.filters) for (const [reason, count] of f.reasons) entries.push(`${count} ${reason}`)
  entries.sort()
  const head = `${report.eligible}/${report.total} nodes are available`
  return entries.length === 0 ? `${head}.` : `${head}: ${entries.join(', ')}.`
}
