import type { InventoryView } from '../inventory/index.js'
import { bitsAnd, bitsAndNot, bitsCount, bitsIsEmpty, bitsOr, bitsSet, type Bits } from '../util/node-set.js'
import { parseInt64, toleratesAny, UNSCHEDULABLE_TAINT, type NodeSelectorRequirement, type NodeSelectorTerm, type Placement } from '../api/scheduling.js'

// Where a pod may land, by the scheduler's filter rules (pkg/scheduler/framework/plugins:
// NodeName, NodeAffinity, TaintToleration, NodeUnschedulable). Only filters count: scores
// (preferred affinity, ImageLocality) never make a node ineligible.

export interface Eligibility {
  nodes: Bits
  count: number
  /** `nodeName` names a node the inventory does not know. */
  unknownNodeName?: string
}

/** Nodes matching one label requirement, written into out. */
function matchLabel(view: InventoryView, r: NodeSelectorRequirement, out: Bits): void {
  out.fill(0)
  const values = r.values ?? []
  switch (r.operator) {
    case 'In':
      for (const v of values) {
        const bits = view.labelValue(r.key, v)
        if (bits !== undefined) bitsOr(out, bits)
      }
      return
    case 'NotIn':
      out.set(view.nodes())
      for (const v of values) {
        const bits = view.labelValue(r.key, v)
        if (bits !== undefined) bitsAndNot(out, bits)
      }
      return
    case 'Exists': {
      const bits = view.labelKey(r.key)
      if (bits !== undefined) bitsOr(out, bits)
      return
    }
    case 'DoesNotExist': {
      out.set(view.nodes())
      const bits = view.labelKey(r.key)
      if (bits !== undefined) bitsAndNot(out, bits)
      return
    }
    case 'Gt':
    case 'Lt': {
      // apimachinery labels.NewRequirement / Requirement.Matches: exactly one value, and it
      // and the node's label both parse with strconv.ParseInt(v, 10, 64). A requirement value
      // that does not parse makes the whole term fail (component-helpers nodeaffinity
      // newNodeSelectorTerm); a label that does not parse (overflow included) never matches.
      const bound = values.length === 1 ? parseInt64(values[0]!) : undefined
      if (bound === undefined) return
      const byValue = view.labelValues(r.key)
      if (byValue === undefined) return
      for (const [value, bits] of byValue) {
        const n = parseInt64(value)
        if (n === undefined) continue
        if (r.operator === 'Gt' ? n > bound : n < bound) bitsOr(out, bits)
      }
      return
    }
    default:
      return
  }
}

/** matchFields supports only metadata.name with In / NotIn. */
function matchField(view: InventoryView, r: NodeSelectorRequirement, out: Bits): void {
  out.fill(0)
  if (r.key !== 'metadata.name') return
  if (r.operator === 'In') {
    for (const name of r.values ?? []) {
      const slot = view.slotOf(name)
      if (slot !== undefined) bitsSet(out, slot)
    }
    bitsAnd(out, view.nodes())
  } else if (r.operator === 'NotIn') {
    out.set(view.nodes())
    for (const name of r.values ?? []) {
      const slot = view.slotOf(name)
      if (slot !== undefined) out[slot >>> 5] = out[slot >>> 5]! & ~(1 << (slot & 31))
    }
  }
}

// Working bitsets, reused across calls: eligibleNodes runs to completion synchronously,
// and allocating three 5,000-bit arrays per request is most of its garbage.
let scratchWords = 0
let scratch = new Uint32Array(0)
let unionBits = new Uint32Array(0)
let termBits = new Uint32Array(0)

function scratchFor(words: number): void {
  if (scratchWords === words) return
  scratchWords = words
  scratch = new Uint32Array(words)
  unionBits = new Uint32Array(words)
  termBits = new Uint32Array(words)
}

/** The nodes a pod with this placement may be scheduled to, by the scheduler's filters. */
export function eligibleNodes(view: InventoryView, placement: Placement): Eligibility {
  const words = view.words
  const nodes = new Uint32Array(words)
  if (placement.nodeName !== undefined && placement.nodeName !== '') {
    const slot = view.slotOf(placement.nodeName)
    if (slot === undefined || view.node(slot) === undefined) {
      return { nodes, count: 0, unknownNodeName: placement.nodeName }
    }
    bitsSet(nodes, slot)
    if (placement.nodeNameFiltered !== true) return { nodes, count: 1 }
  } else {
    nodes.set(view.nodes())
  }
  scratchFor(words)

  const selector = placement.nodeSelector
  if (selector !== undefined) {
    for (const key in selector) {
      const bits = view.labelValue(key, selector[key]!)
      if (bits === undefined) return { nodes: new Uint32Array(words), count: 0 }
      bitsAnd(nodes, bits)
    }
  }

  const terms = placement.requiredTerms
  if (terms !== undefined) {
    const union = unionBits
    const term = termBits
    union.fill(0)
    for (const t of terms) {
      const expressions = t.matchExpressions ?? []
      const fields = t.matchFields ?? []
      // An empty term matches no objects (component-helpers nodeaffinity).
      if (expressions.length === 0 && fields.length === 0) continue
      term.set(view.nodes())
      for (const r of expressions) {
        matchLabel(view, r, scratch)
        bitsAnd(term, scratch)
      }
      for (const r of fields) {
        matchField(view, r, scratch)
        bitsAnd(term, scratch)
      }
      bitsOr(union, term)
    }
    bitsAnd(nodes, union)
  }

  for (const group of view.taintGroups()) {
    if (!toleratesAny(placement.tolerations, group.taint)) bitsAndNot(nodes, group.nodes)
  }
  if (!toleratesAny(placement.tolerations, UNSCHEDULABLE_TAINT)) bitsAndNot(nodes, view.cordoned())

  return { nodes, count: bitsIsEmpty(nodes) ? 0 : bitsCount(nodes) }
}
