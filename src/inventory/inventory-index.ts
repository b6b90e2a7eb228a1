import { crioCandidateKeys, type ShortNameConfig } from '../image/crio.js'
import {
  isIdKey,
  LookupCache,
  nodeStatusImageKey,
  parseReference,
  repositoryOf,
  repositoryOfKey,
  runtimeImageKeys,
  type ImageLookup,
} from '../image/reference.js'
import {
  bitsAnd,
  bitsAndNot,
  bitsClear,
  bitsForEach,
  bitsHas,
  bitsOr,
  bitsIsEmpty,
  bitsSet,
  NodeSet,
  ScratchBits,
  SlotPool,
  wordsFor,
  type Bits,
} from '../util/node-set.js'
import type {
  InventorySink,
  Mode,
  NodeFacts,
  NodeImageSetImageFilesystem,
  NodeImages,
  RuntimeClassFacts,
  RuntimeImage,
  Taint,
} from '../api/types.js'
import type { PullableRegistries } from '../api/registries.js'
import { hasId, packedHas, packIds, sortedIds, unpackIds, type PackedIds } from '../util/sorted-ids.js'

/** A NoSchedule/NoExecute taint and the nodes that carry it. */
export interface TaintGroup {
  readonly taint: Taint
  readonly nodes: Bits
}

/** A node that holds an image where the kubelet does not look. */
export interface ElsewhereHolding {
  readonly slot: number
  /** The containerd namespace, e.g. `default`. */
  readonly namespace: string
  /** The name as containerd stores it, for the fix (`ctr -n default images export x.tar NAME`). */
  readonly name: string
}

/**
 * What the decision engine may ask of the inventory. Every answer is computed from indexes
 * kept up to date one node at a time, so no question costs a scan over all nodes' labels or
 * images. Returned bitsets belong to the index: read them, never write them.
 */
export interface InventoryView {
  /** Words in a node bitset right now. */
  readonly words: number
  readonly nodeCount: number
  readonly imageSetCount: number
  /** Slots of nodes whose Node object we hold. */
  nodes(): Bits
  slotOf(name: string): number | undefined
  nameOf(slot: number): string
  node(slot: number): NodeFacts | undefined
  labelKey(key: string): Bits | undefined
  labelValue(key: string, value: string): Bits | undefined
  /**
   * Every value of label `key` with its nodes: a bitset, or for a value only one node has
   * (kubernetes.io/hostname), that node's slot.
   */
  labelValues(key: string): ReadonlyMap<string, Bits | number> | undefined
  taintGroups(): Iterable<TaintGroup>
  cordoned(): Bits
  nodesWithImage(key: string): NodeSet | undefined
  /**
   * Nodes whose runtime resolves this container image the way the kubelet will ask for it:
   * its key, and where the runtime falls back to one (containerd), a unique image-ID prefix.
   * Which source counts: on a node in `fresh` (a current NodeImageSet) only its NodeImageSet,
   * the complete and newer list; elsewhere its NodeImageSet or its Node.status.images (a
   * kubelet cache, tens of seconds old, so evidence only where nothing better exists).
   * Without `fresh` both sources count everywhere (for tools that ask what any list says).
   * Without an ID fallback or a status-only holder in `fresh` this is
   * nodesWithImage(lookup.key), the same object.
   */
  nodesResolving(lookup: ImageLookup, fresh?: Bits): NodeSet | undefined
  /**
   * Nodes where how the runtime resolves this image is not known: CRI-O nodes whose agent
   * did not publish their short-name configuration, for a short name. Unknown, never absent.
   */
  nodesUnsure(lookup: ImageLookup): NodeSet | undefined
  /**
   * What the node's runtime looks up for this image, in order (for where and explain):
   * containerd the key (then the ID prefix), CRI-O its candidates; [] when it finds nothing
   * by design (no search registry), undefined when not known.
   */
  lookupKeysOn(lookup: ImageLookup, slot: number): string[] | undefined
  /** Image IDs that start with the lookup's ID prefix, on any node, sorted; at most limit. */
  idsWithPrefix(lookup: ImageLookup, limit: number): string[]
  /** Nodes whose NodeImageSet was observed within the staleness window before `now`. */
  freshNodes(now: number): Bits
  /** When the node's image list was last observed (ms), NaN when never. */
  observedAt(slot: number): number
  /** Lookup keys known for a repository (`docker.io/library/nginx`), for "did you mean". */
  repositoryKeys(repository: string): ReadonlySet<string> | undefined
  repositories(): Iterable<string>
  /**
   * compute(), remembered under (repository, key) until the keys of that repository change,
   * or, for a repository the nodes do not hold, until the set of repositories changes. For
   * what is derived from them alone ("did you mean"): a controller retrying a denied pod asks
   * the same question again and again.
   */
  memoByRepository<T>(repository: string, key: string, compute: () => T): T
  namespaceMode(namespace: string): Mode | undefined
  /**
   * True when the namespaces are complete (their list synced) and this one is not among them:
   * created after the inventory's view, in the same `kubectl apply` as what is reviewed, its
   * labels (the mode) not known yet.
   */
  namespaceUnseen(namespace: string): boolean
  /** Nodes holding the image outside the kubelet's view (containerd namespaces other than k8s.io). */
  imagesElsewhere(key: string): readonly ElsewhereHolding[] | undefined
  /** Nodes whose runtime is CRI-O (images are loaded there differently); undefined when there are none. */
  crioNodes(): Bits | undefined
  /** True when the node's runtime lists the image under this key as pinned (kept from GC). */
  isPinned(slot: number, key: string): boolean
  /** The node's image filesystem as its agent last reported it. */
  imageFilesystem(slot: number): NodeImageSetImageFilesystem | undefined
  /** Nodes whose image filesystem is at or above `percent` full; undefined when there are none. */
  nodesAtUsage(percent: number): Bits | undefined
  /** The namespace's pullable-registries annotation; undefined: the webhook's flag applies. */
  namespacePullableRegistries(namespace: string): PullableRegistries | undefined
  namespaceSteer(namespace: string): boolean | undefined
  /** The RuntimeClass of that name, when the inventory holds it. */
  runtimeClass(name: string): RuntimeClassFacts | undefined
  /** True when every RuntimeClass of the cluster is held: a name not held does not exist. */
  readonly runtimeClassesComplete: boolean
  readonly staleAfterMs: number
  /** Working bitsets for placement and decide, which run to completion one call at a time. */
  readonly scratch: ScratchBits
  /** Container images parsed into lookup keys, remembered across requests. */
  readonly lookups: LookupCache
}

export interface IndexOptions {
  /** A node's image list older than this is unknown, never proof of absence. */
  staleAfterMs: number
}

/** The CRI-O nodes that share one short-name configuration, and the candidates it gives. */
interface CrioGroup {
  readonly config: ShortNameConfig | undefined
  /** Its nodes: a bitset, so membership is one word test and masking a word loop. */
  nodes: Bits
  count: number
  /** Container image -> candidate keys (crioCandidateKeys); cleared whole when full. */
  readonly candidates: Map<string, { keys: string[]; short: boolean }>
}

const CANDIDATE_CACHE_SIZE = 4096

/** RuntimeService/Version runtime_name of CRI-O. */
function isCrio(runtimeName: string | undefined): boolean {
  return runtimeName !== undefined && runtimeName.toLowerCase() === 'cri-o'
}

function crioConfigOf(set: NodeImages): ShortNameConfig | undefined {
  const usr = set.runtime?.unqualifiedSearchRegistries
  if (usr === undefined) return undefined
  return { unqualifiedSearchRegistries: usr, shortNameAliases: set.runtime?.shortNameAliases ?? {} }
}

const FILTERING_EFFECTS: ReadonlySet<string> = new Set(['NoSchedule', 'NoExecute'])

const NO_IDS = new Uint32Array(0)
/** Entries per memo map: a bound, not a working set (a few bad images are asked for at a time). */
const MEMO_LIMIT = 1024

function taintId(t: Taint): string {
  return `${t.key}\u0000${t.value ?? ''}\u0000${t.effect}`
}

export class InventoryIndex implements InventorySink, InventoryView {
  readonly staleAfterMs: number
  readonly scratch = new ScratchBits()
  readonly lookups = new LookupCache()
  private capacity = 64
  private slots = new Map<string, number>()
  private names: string[] = []
  private free: number[] = []
  private facts: Array<NodeFacts | undefined> = []
  // Per node, the ids of its keys, sorted and packed: 1-2 bytes a key instead of a Set of
  // strings that each node's watch event allocated afresh.
  private setKeys: Array<PackedIds | undefined> = []
  private statusKeys: Array<PackedIds | undefined> = []
  private keyIds = new Map<string, number>()
  private keyNames: string[] = []
  private keySets: Array<NodeSet | undefined> = []
  /** Where the node lists of keySets and statusOnlySets live: one array, not one per key. */
  private readonly lists = new SlotPool()
  /** Per key id, the nodes that hold it by Node.status.images but not by their NodeImageSet. */
  private statusOnlySets: Array<NodeSet | undefined> = []
  private freeKeys: number[] = []
  private observed: number[] = []
  private nodeBits: Bits
  private cordonBits: Bits
  private keyBits = new Map<string, Bits>()
  /**
   * Per label key, per value, its nodes; for a value only one node has, its slot: a bitset
   * each would cost nodes² bits for kubernetes.io/hostname alone (6 MiB at 5,000 nodes).
   */
  private valueBits = new Map<string, Map<string, Bits | number>>()
  private taints = new Map<string, { taint: Taint; nodes: Bits; count: number }>()
  private repos = new Map<string, Set<string>>()
  /** Per slot, the CRI-O group of a node whose runtime is CRI-O (it resolves names its own way). */
  private crioSlot: Array<string | undefined> = []
  private crioGroups = new Map<string, CrioGroup>()
  private crioCount = 0
  /** Every CRI-O node. */
  private crioBits: Bits
  /** memoByRepository's answers for repositories the nodes hold, dropped when their keys change. */
  private derived = new Map<string, Map<string, unknown>>()
  /** Its answers for repositories they do not hold, dropped when any repository's keys change. */
  private derivedElsewhere = new Map<string, unknown>()
  /**
   * Which key ids are image-ID keys, for the rare truncated-ID lookup: a bitset over key ids
   * (a set bit per update costs nothing; a Set of the ID strings cost a hash insert and
   * delete of a long string per image an update replaced).
   */
  private idKeyBits: Bits = new Uint32Array(0)
  private modes = new Map<string, Mode>()
  private elsewhere = new Map<string, ElsewhereHolding[]>()
  private elsewhereKeys: Array<string[] | undefined> = []
  private pinnedIds: Array<PackedIds | undefined> = []
  private filesystems: Array<NodeImageSetImageFilesystem | undefined> = []
  private runtimeClasses = new Map<string, RuntimeClassFacts>()
  private runtimeClassesListed = false
  private readonly namespacesSeen = new Set<string>()
  private namespacesListed = false
  private fullest = -1
  private usageCache: { percent: number; version: number; bits: Bits | undefined } | undefined
  private pullable = new Map<string, PullableRegistries>()
  private steering = new Map<string, boolean>()
  private imageSets = 0
  private freshCache: { at: number; version: number; bits: Bits } | undefined
  private version = 0

  constructor(options: IndexOptions) {
    this.staleAfterMs = options.staleAfterMs
    const w = wordsFor(this.capacity)
    this.nodeBits = new Uint32Array(w)
    this.cordonBits = new Uint32Array(w)
    this.crioBits = new Uint32Array(w)
  }

  get words(): number {
    return wordsFor(this.capacity)
  }

  get nodeCount(): number {
    let n = 0
    for (const f of this.facts) if (f !== undefined) n++
    return n
  }

  get imageSetCount(): number {
    return this.imageSets
  }

  /** Grows with every change to nodes or image lists: a cheap "did anything change". */
  get generation(): number {
    return this.version
  }

  // ---- write side ----

  upsertNode(node: NodeFacts): void {
    const slot = this.slotFor(node.name)
    const old = this.facts[slot]
    if (old !== undefined) this.unindexNode(slot, old, node.labels)
    // Node.status.images is indexed below; the names themselves are not kept.
    this.facts[slot] = node.statusImageNames.length === 0 ? node : { ...node, statusImageNames: [] }
    bitsSet(this.nodeBits, slot)
    for (const key in node.labels) {
      const value = node.labels[key]!
      if (old !== undefined && old.labels[key] === value) continue
      this.bitsIn(this.keyBits, key, slot)
      let values = this.valueBits.get(key)
      if (values === undefined) this.valueBits.set(key, (values = new Map<string, Bits | number>()))
      const held = values.get(value)
      if (held === undefined) values.set(value, slot)
      else if (typeof held !== 'number') bitsSet(held, slot)
      else if (held !== slot) {
        const bits = this.single(held)
        bitsSet(bits, slot)
        values.set(value, bits)
      }
    }
    for (const t of node.taints) {
      if (!FILTERING_EFFECTS.has(t.effect)) continue
      const id = taintId(t)
      let group = this.taints.get(id)
      if (group === undefined) this.taints.set(id, (group = { taint: t, nodes: new Uint32Array(this.words), count: 0 }))
      bitsSet(group.nodes, slot)
      group.count++
    }
    if (node.unschedulable) bitsSet(this.cordonBits, slot)
    const ids: number[] = []
    for (const name of node.statusImageNames) {
      const key = nodeStatusImageKey(name)
      if (key !== undefined) ids.push(this.intern(key))
    }
    this.replaceKeys(slot, this.statusKeys, sortedIds(ids), this.setKeys)
    this.version++
  }

  removeNode(name: string): void {
    const slot = this.slots.get(name)
    if (slot === undefined) return
    const old = this.facts[slot]
    if (old !== undefined) this.unindexNode(slot, old)
    this.facts[slot] = undefined
    this.replaceKeys(slot, this.statusKeys, NO_IDS, this.setKeys)
    this.release(slot)
    this.version++
  }

  upsertImages(set: NodeImages): void {
    const slot = this.slotFor(set.nodeName)
    const ids: number[] = []
    let pinned: number[] | undefined
    for (const image of set.images) {
      const start = ids.length
      this.imageIds(image, ids)
      if (image.pinned) (pinned ??= []).push(...ids.slice(start))
    }
    if (this.setKeys[slot] === undefined) this.imageSets++
    this.replaceKeys(slot, this.setKeys, sortedIds(ids), this.statusKeys)
    // Interned above, so the ids stay valid as long as the node holds the keys.
    this.pinnedIds[slot] = pinned === undefined ? undefined : packIds(sortedIds(pinned))
    this.filesystems[slot] = set.imageFilesystem
    const used = set.imageFilesystem?.usedPercent
    if (used !== undefined && used > this.fullest) this.fullest = used
    this.replaceElsewhere(slot, set.elsewhere)
    this.observed[slot] = set.observedAt
    this.setCrio(slot, isCrio(set.runtime?.name) ? set : undefined)
    this.version++
  }

  removeImages(nodeName: string): void {
    const slot = this.slots.get(nodeName)
    if (slot === undefined || this.setKeys[slot] === undefined) return
    this.replaceKeys(slot, this.setKeys, NO_IDS, this.statusKeys)
    this.setKeys[slot] = undefined
    this.setCrio(slot, undefined)
    this.pinnedIds[slot] = undefined
    this.filesystems[slot] = undefined
    this.replaceElsewhere(slot, undefined)
    this.imageSets--
    this.observed[slot] = Number.NaN
    this.release(slot)
    this.version++
  }

  setNamespaceMode(namespace: string, mode: Mode | undefined): void {
    if (mode === undefined) this.modes.delete(namespace)
    else this.modes.set(namespace, mode)
  }

  setNamespaceSeen(namespace: string, seen: boolean): void {
    if (seen) this.namespacesSeen.add(namespace)
    else this.namespacesSeen.delete(namespace)
  }

  setNamespacesComplete(complete: boolean): void {
    this.namespacesListed = complete
  }

  upsertRuntimeClass(runtimeClass: RuntimeClassFacts): void {
    this.runtimeClasses.set(runtimeClass.name, runtimeClass)
  }

  removeRuntimeClass(name: string): void {
    this.runtimeClasses.delete(name)
  }

  setRuntimeClassesComplete(complete: boolean): void {
    this.runtimeClassesListed = complete
  }

  runtimeClass(name: string): RuntimeClassFacts | undefined {
    return this.runtimeClasses.get(name)
  }

  get runtimeClassesComplete(): boolean {
    return this.runtimeClassesListed
  }

  setNamespacePullableRegistries(namespace: string, registries: PullableRegistries | undefined): void {
    if (registries === undefined) this.pullable.delete(namespace)
    else this.pullable.set(namespace, registries)
  }

  setNamespaceSteer(namespace: string, steer: boolean | undefined): void {
    if (steer === undefined) this.steering.delete(namespace)
    else this.steering.set(namespace, steer)
  }

  // ---- read side ----

  nodes(): Bits {
    return this.nodeBits
  }

  slotOf(name: string): number | undefined {
    return this.slots.get(name)
  }

  nameOf(slot: number): string {
    return this.names[slot] ?? `#${slot}`
  }

  node(slot: number): NodeFacts | undefined {
    return this.facts[slot]
  }

  labelKey(key: string): Bits | undefined {
    return this.keyBits.get(key)
  }

  labelValue(key: string, value: string): Bits | undefined {
    const held = this.valueBits.get(key)?.get(value)
    return typeof held === 'number' ? this.single(held) : held
  }

  labelValues(key: string): ReadonlyMap<string, Bits | number> | undefined {
    return this.valueBits.get(key)
  }

  taintGroups(): Iterable<TaintGroup> {
    return this.taints.values()
  }

  cordoned(): Bits {
    return this.cordonBits
  }

  nodesWithImage(key: string): NodeSet | undefined {
    const id = this.keyIds.get(key)
    return id === undefined ? undefined : this.keySets[id]
  }

  nodesResolving(lookup: ImageLookup, fresh?: Bits): NodeSet | undefined {
    const byName = this.holders(lookup.key, fresh)
    // The hot path: no CRI-O node, no truncated ID: one map lookup, the index's own set.
    if (this.crioCount === 0) return lookup.idPrefix === undefined ? byName : this.withIdPrefix(byName, lookup.idPrefix)
    const base = lookup.idPrefix === undefined ? byName : this.withIdPrefix(byName, lookup.idPrefix)
    // Pieces of the answer: a holder set, and the mask it needs (none when it lies wholly
    // inside its nodes). One unmasked piece is the answer itself, no copy: the common case
    // of a cluster whose CRI-O nodes share one configuration.
    const pieces: Array<{ set: NodeSet; mask: Bits | undefined; invert: boolean }> = []
    if (base !== undefined) {
      const onCrio = base.countIn(this.crioBits)
      if (onCrio < base.size) pieces.push({ set: base, mask: onCrio === 0 ? undefined : this.crioBits, invert: true })
    }
    for (const group of this.crioGroups.values()) {
      // First present wins, so for presence: any candidate the node holds.
      for (const key of this.crioCandidates(group, lookup.image).keys) {
        const set = this.holders(key, fresh)
        if (set === undefined) continue
        const inGroup = set.countIn(group.nodes)
        if (inGroup > 0) pieces.push({ set, mask: inGroup === set.size ? undefined : group.nodes, invert: false })
      }
    }
    if (pieces.length === 0) return undefined
    if (pieces.length === 1 && pieces[0]!.mask === undefined) return pieces[0]!.set
    const out = new Uint32Array(this.words)
    const part = new Uint32Array(this.words)
    for (const { set, mask, invert } of pieces) {
      part.fill(0)
      set.orInto(part)
      if (mask !== undefined) (invert ? bitsAndNot : bitsAnd)(part, mask)
      bitsOr(out, part)
    }
    return NodeSet.fromBits(out)
  }

  lookupKeysOn(lookup: ImageLookup, slot: number): string[] | undefined {
    const signature = this.crioSlot[slot]
    if (signature === undefined)
      return lookup.idPrefix === undefined ? [lookup.key] : [lookup.key, `an image ID starting ${lookup.idPrefix}`]
    const group = this.crioGroups.get(signature)!
    const c = this.crioCandidates(group, lookup.image)
    return group.config === undefined && c.short ? undefined : c.keys
  }

  nodesUnsure(lookup: ImageLookup): NodeSet | undefined {
    if (this.crioCount === 0) return undefined
    let out: Bits | undefined
    for (const group of this.crioGroups.values()) {
      if (group.config !== undefined || !this.crioCandidates(group, lookup.image).short) continue
      out ??= new Uint32Array(this.words)
      bitsOr(out, group.nodes)
    }
    return out === undefined ? undefined : NodeSet.fromBits(out)
  }

  private crioCandidates(group: CrioGroup, image: string): { keys: string[]; short: boolean } {
    let hit = group.candidates.get(image)
    if (hit === undefined) {
      if (group.candidates.size >= CANDIDATE_CACHE_SIZE) group.candidates.clear()
      group.candidates.set(image, (hit = crioCandidateKeys(image, group.config)))
    }
    return hit
  }

  /** Moves a node into the CRI-O group of its configuration, or out of every group. */
  private setCrio(slot: number, set: NodeImages | undefined): void {
    const config = set === undefined ? undefined : crioConfigOf(set)
    const signature =
      set === undefined
        ? undefined
        : config === undefined
          ? '?'
          : JSON.stringify([config.unqualifiedSearchRegistries, Object.entries(config.shortNameAliases).sort()])
    const old = this.crioSlot[slot]
    if (old === signature) return
    if (old !== undefined) {
      const group = this.crioGroups.get(old)!
      bitsClear(group.nodes, slot)
      if (--group.count === 0) this.crioGroups.delete(old)
      bitsClear(this.crioBits, slot)
      this.crioCount--
    }
    this.crioSlot[slot] = signature
    if (signature === undefined) return
    let group = this.crioGroups.get(signature)
    if (group === undefined)
      this.crioGroups.set(
        signature,
        (group = { config, nodes: new Uint32Array(this.words), count: 0, candidates: new Map() }),
      )
    bitsSet(group.nodes, slot)
    group.count++
    bitsSet(this.crioBits, slot)
    this.crioCount++
  }

  private holders(key: string, fresh: Bits | undefined): NodeSet | undefined {
    return fresh === undefined ? this.nodesWithImage(key) : this.withoutOutranked(key, fresh)
  }

  /**
   * nodesWithImage(key) less the nodes whose fresh NodeImageSet lacks the key and only their
   * Node.status.images has it: the kubelet refreshes that list from a cache, so after a
   * removal it keeps naming the image for a while (issue 15). Usually nothing to take out,
   * and then the index's own set is returned.
   */
  private withoutOutranked(key: string, fresh: Bits): NodeSet | undefined {
    const id = this.keyIds.get(key)
    if (id === undefined) return undefined
    const all = this.keySets[id]
    const statusOnly = this.statusOnlySets[id]
    if (all === undefined || statusOnly === undefined || statusOnly.countIn(fresh) === 0) return all
    const out = new NodeSet()
    all.forEach((slot) => {
      if (!(statusOnly.has(slot) && bitsHas(fresh, slot))) out.add(slot)
    })
    return out.size === 0 ? undefined : out
  }

  /**
   * containerd's fallback after the name (digestset Lookup, see idPrefixOf): on a node where
   * the name matched nothing, exactly one image ID starting with prefix is that image; two or
   * more make ImageStatus fail, so the node does not have it.
   */
  private withIdPrefix(byName: NodeSet | undefined, prefix: string): NodeSet | undefined {
    const counts = this.idPrefixCounts(prefix)
    if (counts.size === 0) return byName
    const out = new NodeSet()
    byName?.forEach((slot) => out.add(slot))
    for (const [slot, n] of counts) if (n === 1) out.add(slot)
    return out.size === 0 ? undefined : out
  }

  idsWithPrefix(lookup: ImageLookup, limit: number): string[] {
    const prefix = lookup.idPrefix
    if (prefix === undefined) return []
    const out: string[] = []
    bitsForEach(this.idKeyBits, (id) => {
      const key = this.keyNames[id]!
      if (key.startsWith(prefix)) out.push(key)
    })
    return out.sort().slice(0, limit)
  }

  /** Nodes where the lookup's ID prefix names more than one image and no name matches: containerd answers with an error there. */
  ambiguousIdPrefix(lookup: ImageLookup): string[] {
    if (lookup.idPrefix === undefined) return []
    const byName = this.nodesWithImage(lookup.key)
    const out: string[] = []
    for (const [slot, n] of this.idPrefixCounts(lookup.idPrefix))
      if (n > 1 && byName?.has(slot) !== true) out.push(this.nameOf(slot))
    return out.sort()
  }

  /**
   * Per node, how many of its image IDs start with prefix. Only a node's NodeImageSet lists
   * all its image IDs (Node.status.images holds names, at most 50 images), so only that list
   * can prove a prefix unique. A scan over the distinct IDs: this form is rare.
   */
  private idPrefixCounts(prefix: string): Map<number, number> {
    const counts = new Map<number, number>()
    bitsForEach(this.idKeyBits, (id) => {
      if (!this.keyNames[id]!.startsWith(prefix)) return
      this.keySets[id]?.forEach((slot) => {
        const listed = this.setKeys[slot]
        if (listed !== undefined && packedHas(listed, id)) counts.set(slot, (counts.get(slot) ?? 0) + 1)
      })
    })
    return counts
  }

  freshNodes(now: number): Bits {
    // Freshness only changes with the clock or the data: reuse the answer within a second.
    const cached = this.freshCache
    const second = Math.floor(now / 1000)
    if (cached !== undefined && cached.version === this.version && cached.at === second) return cached.bits
    const bits = new Uint32Array(this.words)
    const oldest = now - this.staleAfterMs
    for (let slot = 0; slot < this.names.length; slot++) {
      const at = this.observed[slot]
      if (this.setKeys[slot] !== undefined && at !== undefined && at >= oldest) bitsSet(bits, slot)
    }
    this.freshCache = { at: second, version: this.version, bits }
    return bits
  }

  observedAt(slot: number): number {
    return this.observed[slot] ?? Number.NaN
  }

  repositoryKeys(repository: string): ReadonlySet<string> | undefined {
    return this.repos.get(repository)
  }

  repositories(): Iterable<string> {
    return this.repos.keys()
  }

  memoByRepository<T>(repository: string, key: string, compute: () => T): T {
    let memo: Map<string, unknown> | undefined
    if (this.repos.has(repository)) {
      memo = this.derived.get(repository)
      if (memo === undefined) {
        if (this.derived.size >= MEMO_LIMIT) this.derived.clear()
        this.derived.set(repository, (memo = new Map<string, unknown>()))
      }
    } else memo = this.derivedElsewhere
    if (memo.has(key)) return memo.get(key) as T
    const value = compute()
    if (memo.size >= MEMO_LIMIT) memo.clear()
    memo.set(key, value)
    return value
  }

  /** A repository's keys changed: what was derived from them, or from the set of repositories, is stale. */
  private repositoryChanged(repository: string): void {
    this.derived.delete(repository)
    if (this.derivedElsewhere.size > 0) this.derivedElsewhere.clear()
  }

  namespaceMode(namespace: string): Mode | undefined {
    return this.modes.get(namespace)
  }

  namespaceUnseen(namespace: string): boolean {
    return this.namespacesListed && namespace !== '' && !this.namespacesSeen.has(namespace)
  }

  crioNodes(): Bits | undefined {
    return this.crioCount === 0 ? undefined : this.crioBits
  }

  imagesElsewhere(key: string): readonly ElsewhereHolding[] | undefined {
    return this.elsewhere.size === 0 ? undefined : this.elsewhere.get(key)
  }

  isPinned(slot: number, key: string): boolean {
    const pinned = this.pinnedIds[slot]
    if (pinned === undefined) return false
    const id = this.keyIds.get(key)
    return id !== undefined && packedHas(pinned, id)
  }

  imageFilesystem(slot: number): NodeImageSetImageFilesystem | undefined {
    return this.filesystems[slot]
  }

  nodesAtUsage(percent: number): Bits | undefined {
    // The allow path: no node was ever this full, nothing to look at.
    if (this.fullest < percent) return undefined
    const cached = this.usageCache
    if (cached !== undefined && cached.percent === percent && cached.version === this.version) return cached.bits
    const bits = new Uint32Array(this.words)
    let any = false
    let fullest = -1
    for (let slot = 0; slot < this.filesystems.length; slot++) {
      const used = this.filesystems[slot]?.usedPercent
      if (used === undefined || this.setKeys[slot] === undefined) continue
      if (used > fullest) fullest = used
      if (used >= percent) {
        bitsSet(bits, slot)
        any = true
      }
    }
    this.fullest = fullest
    const result = any ? bits : undefined
    this.usageCache = { percent, version: this.version, bits: result }
    return result
  }

  namespacePullableRegistries(namespace: string): PullableRegistries | undefined {
    // Most clusters set none: skip the hash lookup on the allow path.
    return this.pullable.size === 0 ? undefined : this.pullable.get(namespace)
  }

  namespaceSteer(namespace: string): boolean | undefined {
    return this.steering.get(namespace)
  }

  // ---- internals ----

  /**
   * The node's images outside the kubelet's view, by lookup key: the name in docker-ref
   * form and, with the digest it points to, repository@digest. Never counted as present.
   */
  private replaceElsewhere(slot: number, images: NodeImages['elsewhere']): void {
    for (const key of this.elsewhereKeys[slot] ?? []) {
      const holders = this.elsewhere.get(key)
      if (holders === undefined) continue
      const rest = holders.filter((h) => h.slot !== slot)
      if (rest.length === 0) this.elsewhere.delete(key)
      else this.elsewhere.set(key, rest)
    }
    this.elsewhereKeys[slot] = undefined
    if (images === undefined || images.length === 0) return
    const keys: string[] = []
    const add = (key: string, holding: ElsewhereHolding): void => {
      let holders = this.elsewhere.get(key)
      if (holders === undefined) this.elsewhere.set(key, (holders = []))
      if (holders.some((h) => h.slot === slot && h.namespace === holding.namespace)) return
      holders.push(holding)
      if (!keys.includes(key)) keys.push(key)
    }
    for (const image of images) {
      const holding: ElsewhereHolding = { slot, namespace: image.containerdNamespace, name: image.name }
      const key = nodeStatusImageKey(image.name)
      if (key !== undefined) add(key, holding)
      const parsed = parseReference(image.name)
      if (image.digest !== undefined && parsed.ok) add(`${repositoryOf(parsed.ref)}@${image.digest}`, holding)
    }
    this.elsewhereKeys[slot] = keys
  }

  private slotFor(name: string): number {
    const existing = this.slots.get(name)
    if (existing !== undefined) return existing
    const slot = this.free.pop() ?? this.names.length
    if (slot >= this.capacity) this.grow(slot + 1)
    this.slots.set(name, slot)
    this.names[slot] = name
    this.observed[slot] = Number.NaN
    return slot
  }

  /** Frees the slot once neither a Node nor a NodeImageSet refers to it. */
  private release(slot: number): void {
    if (this.facts[slot] !== undefined || this.setKeys[slot] !== undefined) return
    const name = this.names[slot]
    if (name === undefined) return
    this.slots.delete(name)
    this.names[slot] = ''
    this.free.push(slot)
  }

  /**
   * Takes the node out of the label, taint and cordon indexes. Labels it keeps with the same
   * value in `next` stay (a Node status update rarely changes labels); an index entry left
   * with no node is dropped, so nodes that come and go (autoscaling) leave nothing behind.
   */
  private unindexNode(slot: number, node: NodeFacts, next: Record<string, string> = {}): void {
    bitsClear(this.nodeBits, slot)
    for (const key in node.labels) {
      const value = node.labels[key]!
      if (next[key] === value) continue
      const values = this.valueBits.get(key)
      const held = values?.get(value)
      if (typeof held === 'number') {
        if (held === slot) values!.delete(value)
      } else if (held !== undefined) {
        bitsClear(held, slot)
        if (bitsIsEmpty(held)) values!.delete(value)
      }
      if (key in next) continue
      const keyBits = this.keyBits.get(key)
      if (keyBits === undefined) continue
      bitsClear(keyBits, slot)
      if (bitsIsEmpty(keyBits)) {
        this.keyBits.delete(key)
        this.valueBits.delete(key)
      }
    }
    for (const t of node.taints) {
      if (!FILTERING_EFFECTS.has(t.effect)) continue
      const id = taintId(t)
      const group = this.taints.get(id)
      if (group === undefined) continue
      bitsClear(group.nodes, slot)
      if (--group.count === 0) this.taints.delete(id)
    }
    bitsClear(this.cordonBits, slot)
  }

  /**
   * The key ids of one runtime image. containerd already reports normalised names, and a
   * key is a normalised name: a name that is already a key needs no parsing, which is most
   * of the cost of an update when the images are known elsewhere in the cluster.
   */
  private imageIds(image: RuntimeImage, out: number[]): void {
    const start = out.length
    let known = this.keyIds.get(image.id)
    if (known !== undefined) {
      out.push(known)
      for (const name of image.repoTags) {
        if ((known = this.keyIds.get(name)) === undefined) break
        out.push(known)
      }
      if (known !== undefined) {
        for (const name of image.repoDigests) {
          if ((known = this.keyIds.get(name)) === undefined) break
          out.push(known)
        }
      }
      if (known !== undefined) return
    }
    out.length = start
    for (const key of runtimeImageKeys(image)) out.push(this.intern(key))
  }

  private intern(key: string): number {
    let id = this.keyIds.get(key)
    if (id === undefined) {
      id = this.freeKeys.pop() ?? this.keyNames.length
      this.keyIds.set(key, id)
      this.keyNames[id] = key
    }
    return id
  }

  /**
   * Moves one source's keys for a node (its NodeImageSet, or its Node status) from the old
   * ids to `next`; a key leaves the node only when the other source does not hold it either,
   * and is marked status-only while only the Node status holds it.
   * Both lists are sorted: one merge walk.
   */
  private replaceKeys(
    slot: number,
    source: Array<PackedIds | undefined>,
    next: Uint32Array,
    other: Array<PackedIds | undefined>,
  ): void {
    const fromStatus = source === this.statusKeys
    const packed = source[slot]
    const previous = packed === undefined ? NO_IDS : unpackIds(packed)
    const otherPacked = other[slot]
    // Unpacked when first needed: a Node status update usually changes no image.
    let otherIds: Uint32Array | undefined
    let i = 0
    let j = 0
    while (i < previous.length || j < next.length) {
      const a = i < previous.length ? previous[i]! : Infinity
      const b = j < next.length ? next[j]! : Infinity
      if (a === b) {
        i++
        j++
      } else if (a < b) {
        if (otherPacked !== undefined) otherIds ??= unpackIds(otherPacked)
        const inOther = otherIds !== undefined && hasId(otherIds, a)
        if (fromStatus) this.markStatusOnly(a, slot, false)
        if (!inOther) this.removeKey(a, slot)
        else if (!fromStatus) this.markStatusOnly(a, slot, true)
        i++
      } else {
        if (otherPacked !== undefined) otherIds ??= unpackIds(otherPacked)
        const inOther = otherIds !== undefined && hasId(otherIds, b)
        this.addKey(b, slot)
        if (fromStatus !== inOther) this.markStatusOnly(b, slot, fromStatus)
        j++
      }
    }
    source[slot] = packIds(next)
  }

  private markStatusOnly(id: number, slot: number, on: boolean): void {
    let set = this.statusOnlySets[id]
    if (on) {
      if (set === undefined) this.statusOnlySets[id] = set = new NodeSet(this.lists)
      set.add(slot)
    } else if (set !== undefined) {
      set.delete(slot)
      if (set.size === 0) this.statusOnlySets[id] = undefined
    }
  }

  private addKey(id: number, slot: number): void {
    let set = this.keySets[id]
    if (set === undefined) {
      this.keySets[id] = set = new NodeSet(this.lists)
      const key = this.keyNames[id]!
      if (isIdKey(key)) {
        if (id >>> 5 >= this.idKeyBits.length) {
          const wider = new Uint32Array(Math.max(64, (id >>> 5) * 2))
          wider.set(this.idKeyBits)
          this.idKeyBits = wider
        }
        bitsSet(this.idKeyBits, id)
      }
      const repo = repositoryOfKey(key)
      if (repo !== undefined) {
        let keys = this.repos.get(repo)
        if (keys === undefined) this.repos.set(repo, (keys = new Set()))
        keys.add(key)
        this.repositoryChanged(repo)
      }
    }
    set.add(slot)
  }

  private removeKey(id: number, slot: number): void {
    const set = this.keySets[id]
    if (set === undefined) return
    set.delete(slot)
    if (set.size > 0) return
    const key = this.keyNames[id]!
    this.keySets[id] = undefined
    this.statusOnlySets[id]?.clear()
    this.statusOnlySets[id] = undefined
    this.keyIds.delete(key)
    this.keyNames[id] = ''
    this.freeKeys.push(id)
    bitsClear(this.idKeyBits, id)
    const repo = repositoryOfKey(key)
    if (repo === undefined) return
    const keys = this.repos.get(repo)
    keys?.delete(key)
    if (keys?.size === 0) this.repos.delete(repo)
    this.repositoryChanged(repo)
  }

  /** A bitset of one node. */
  private single(slot: number): Bits {
    const bits = new Uint32Array(this.words)
    bitsSet(bits, slot)
    return bits
  }

  private bitsIn(map: Map<string, Bits>, key: string, slot: number): void {
    let bits = map.get(key)
    if (bits === undefined) map.set(key, (bits = new Uint32Array(this.words)))
    bitsSet(bits, slot)
  }

  /** Doubles capacity and widens every node bitset the index owns. */
  private grow(minimum: number): void {
    while (this.capacity < minimum) this.capacity *= 2
    const w = this.words
    const widen = (bits: Bits): Bits => {
      const next = new Uint32Array(w)
      next.set(bits)
      return next
    }
    this.nodeBits = widen(this.nodeBits)
    this.cordonBits = widen(this.cordonBits)
    for (const [k, b] of this.keyBits) this.keyBits.set(k, widen(b))
    for (const values of this.valueBits.values())
      for (const [v, b] of values) if (typeof b !== 'number') values.set(v, widen(b))
    for (const group of this.taints.values()) group.nodes = widen(group.nodes)
    this.crioBits = widen(this.crioBits)
    for (const group of this.crioGroups.values()) group.nodes = widen(group.nodes)
    this.freshCache = undefined
    this.usageCache = undefined
  }
}
