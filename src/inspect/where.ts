import { lookupKey, repositoryOfKey, shortRef } from '../image/reference.js'
import { moveCommand } from '../decision/messages.js'
import type { InventoryView } from '../inventory/inventory-index.js'
import { bitsAnd, bitsForEach, bitsHas, type Bits } from '../util/node-set.js'

// "Where is my image?": every node, whether it holds the image (any reference form), what
// else of the same repository it holds, and whether its image list can be trusted.

export type Presence = 'present' | 'absent' | 'unknown'

export interface NodeRow {
  node: string
  presence: Presence
  /** ms since epoch; NaN when the node has no image list. */
  observedAt: number
  /** Other references of the same repository on this node (short form). */
  sameRepository: string[]
  /** containerd namespaces other than k8s.io that hold the image on this node (the kubelet does not look there). */
  elsewhere: Array<{ namespace: string; name: string }>
}

export interface WhereReport {
  image: string
  key?: string
  error?: string
  rows: NodeRow[]
  /** Nodes whose runtime looks the image up other than as `key` (CRI-O short names): how, and on how many. */
  otherLookups?: Array<{ keys: string[] | undefined; nodes: number }>
  present: number
  absent: number
  unknown: number
  /** `--runtime-class`: only the nodes its scheduling.nodeSelector selects are listed. */
  runtimeClass?: { name: string; nodeSelector?: Record<string, string> }
}

export interface WhereOptions {
  /** List only the nodes this RuntimeClass's pods may run on (its scheduling.nodeSelector). */
  runtimeClass?: string
}

const ORDER: Record<Presence, number> = { present: 0, absent: 1, unknown: 2 }

/** The nodes a RuntimeClass's nodeSelector selects (all nodes without one), or an error. */
function runtimeClassNodes(
  view: InventoryView,
  name: string,
): { nodes: Bits; nodeSelector?: Record<string, string> } | { error: string } {
  const rc = view.runtimeClass(name)
  if (rc === undefined) {
    return {
      error: view.runtimeClassesComplete
        ? `RuntimeClass ${name} does not exist`
        : `RuntimeClass ${name} is not in the inventory`,
    }
  }
  const nodes = Uint32Array.from(view.nodes())
  if (rc.nodeSelector === undefined) return { nodes }
  for (const key of Object.keys(rc.nodeSelector)) {
    const bits = view.labelValue(key, rc.nodeSelector[key]!)
    if (bits === undefined) nodes.fill(0)
    else bitsAnd(nodes, bits)
  }
  return { nodes, nodeSelector: rc.nodeSelector }
}

export function whereIs(view: InventoryView, image: string, now: number, options: WhereOptions = {}): WhereReport {
  const parsed = lookupKey(image)
  if (!parsed.ok) return { image, error: parsed.error, rows: [], present: 0, absent: 0, unknown: 0 }
  let scope = view.nodes()
  let runtimeClass: WhereReport['runtimeClass']
  if (options.runtimeClass !== undefined) {
    const selected = runtimeClassNodes(view, options.runtimeClass)
    if ('error' in selected) return { image, error: selected.error, rows: [], present: 0, absent: 0, unknown: 0 }
    scope = selected.nodes
    runtimeClass = { name: options.runtimeClass }
    if (selected.nodeSelector !== undefined) runtimeClass.nodeSelector = selected.nodeSelector
  }
  const key = parsed.key
  const fresh = view.freshNodes(now)
  const holders = view.nodesResolving(parsed, fresh)
  const repository = repositoryOfKey(key)
  const related = repository === undefined ? [] : [...(view.repositoryKeys(repository) ?? [])].filter((k) => k !== key)
  const held = view.imagesElsewhere(key) ?? []
  const rows: NodeRow[] = []
  const other = new Map<string, { keys: string[] | undefined; nodes: number }>()
  bitsForEach(scope, (slot) => {
    const keys = view.lookupKeysOn(parsed, slot)
    if (keys === undefined || keys.length !== 1 || keys[0] !== key) {
      const id = keys === undefined ? '?' : keys.join('\u0000')
      const entry = other.get(id)
      if (entry === undefined) other.set(id, { keys, nodes: 1 })
      else entry.nodes++
    }
    const presence: Presence = holders?.has(slot) === true ? 'present' : bitsHas(fresh, slot) ? 'absent' : 'unknown'
    const sameRepository: string[] = []
    for (const k of related) {
      if (!k.includes('@') && view.nodesWithImage(k)?.has(slot) === true) sameRepository.push(shortRef(k))
    }
    sameRepository.sort()
    const elsewhere = held.filter((h) => h.slot === slot).map((h) => ({ namespace: h.namespace, name: h.name }))
    rows.push({ node: view.nameOf(slot), presence, observedAt: view.observedAt(slot), sameRepository, elsewhere })
  })
  rows.sort((a, b) => ORDER[a.presence] - ORDER[b.presence] || (a.node < b.node ? -1 : 1))
  const count = (p: Presence): number => rows.filter((r) => r.presence === p).length
  const report: WhereReport = {
    image,
    key,
    rows,
    present: count('present'),
    absent: count('absent'),
    unknown: count('unknown'),
  }
  if (other.size > 0) report.otherLookups = [...other.values()]
  if (runtimeClass !== undefined) report.runtimeClass = runtimeClass
  return report
}

function lookupText(keys: string[] | undefined): string {
  if (keys === undefined)
    return 'unknown (its runtime resolves short names through a registries.conf the agent did not publish)'
  if (keys.length === 0) return 'nothing: no unqualified-search registry and no alias for this short name'
  return keys.join(', then ')
}

export function age(observedAt: number, now: number): string {
  if (Number.isNaN(observedAt)) return 'never'
  const s = Math.max(0, Math.round((now - observedAt) / 1000))
  if (s < 120) return `${s}s ago`
  if (s < 7200) return `${Math.round(s / 60)}m ago`
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`
  return `${Math.round(s / 86_400)}d ago`
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3)))
          .join('')
          .trimEnd(),
      )
      .join('\n') + '\n'
  )
}

export function renderWhere(report: WhereReport, now: number): string {
  if (report.error !== undefined) return `${report.error}\n`
  let head = `${report.image} is looked up as ${report.key}\n`
  for (const o of report.otherLookups ?? [])
    head += `  on ${o.nodes} node${o.nodes === 1 ? '' : 's'}: ${lookupText(o.keys)}\n`
  const rc = report.runtimeClass
  if (rc !== undefined) {
    const selector =
      rc.nodeSelector === undefined
        ? 'every node'
        : Object.entries(rc.nodeSelector)
            .map(([k, v]) => `${k}=${v}`)
            .join(',')
    head += `nodes for RuntimeClass ${rc.name} (nodeSelector ${selector}) only\n`
  }
  if (report.rows.length === 0) return `${head}no nodes in the inventory${rc === undefined ? '' : ' match it'}\n`
  const rows = [['NODE', 'IMAGE', 'IMAGE LIST OBSERVED', 'SAME REPOSITORY']]
  for (const r of report.rows) {
    const presence =
      r.presence !== 'present' && r.elsewhere.length > 0
        ? `${r.presence}; in containerd namespace ${r.elsewhere.map((e) => e.namespace).join(', ')}`
        : r.presence
    rows.push([r.node, presence, age(r.observedAt, now), r.sameRepository.join(', ')])
  }
  const n = report.rows.length
  let tail =
    `present on ${report.present} of ${n} node${n === 1 ? '' : 's'}` +
    (report.unknown > 0 ? `; ${report.unknown} without a current image list (unknown, not absent)` : '') +
    '\n'
  const wrong = report.rows.filter((r) => r.presence !== 'present' && r.elsewhere.length > 0)
  const first = wrong[0]?.elsewhere[0]
  if (first !== undefined) {
    tail +=
      `${wrong.length} node${wrong.length === 1 ? ' holds' : 's hold'} it only outside containerd namespace k8s.io, where the kubelet does not look; ` +
      `on each: ${moveCommand(first)}\n`
  }
  return head + table(rows) + tail
}
