import { readFile } from 'node:fs/promises'
import { parseAllDocuments } from 'yaml'
import { namespaceMode, namespacePullableRegistries, namespaceSteer, toNodeFacts, toNodeImages } from './convert.js'
import { GROUP, type InventorySink } from '../api/types.js'
import { isRuntimeClass, toRuntimeClass } from './runtime-class.js'
import { errorMessage } from '../util/guards.js'

// A static inventory: what `kubectl get nodes,nodeimagesets,namespaces,runtimeclasses -o yaml` prints (a
// List), or several documents. A snapshot is taken as the truth at the time it is loaded:
// its image lists count as observed now, so an offline check can deny like the webhook.

export interface LoadSummary {
  nodes: number
  imageSets: number
  namespaces: number
  /** RuntimeClasses; with one or more, the file is taken to hold all of the cluster's. */
  runtimeClasses: number
  /** Objects of other kinds, ignored. */
  ignored: number
  /**
   * Fields left out of objects that were otherwise loaded (a Node's `status.images[3].names`
   * that is not a list, say), each naming its object: `object 2 (Node a): ...`.
   */
  skipped: string[]
}

export class InventoryFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`)
  }
}

function items(doc: unknown): unknown[] {
  if (doc === null || doc === undefined) return []
  if (typeof doc !== 'object') return [doc]
  const kind = (doc as { kind?: unknown }).kind
  const list = (doc as { items?: unknown }).items
  if (typeof kind === 'string' && kind.endsWith('List') && Array.isArray(list)) return list.flatMap(items)
  return [doc]
}

/**
 * Parses inventory text into the sink. All-or-nothing: every object is validated before the
 * first one reaches the sink, so a bad file never leaves half an inventory behind.
 */
export function loadInventoryText(text: string, file: string, sink: InventorySink, now: number): LoadSummary {
  const docs = parseAllDocuments(text)
  const objects: unknown[] = []
  for (const [i, doc] of docs.entries()) {
    const error = doc.errors[0]
    if (error !== undefined) throw new InventoryFileError(file, `document ${i + 1}: ${error.message}`)
    objects.push(...items(doc.toJS({ maxAliasCount: 100 })))
  }
  const apply: Array<() => void> = []
  const summary: LoadSummary = { nodes: 0, imageSets: 0, namespaces: 0, runtimeClasses: 0, ignored: 0, skipped: [] }
  for (const [i, obj] of objects.entries()) {
    const o = obj as { kind?: unknown; apiVersion?: unknown; metadata?: { name?: unknown } }
    if (typeof o !== 'object' || o === null) throw new InventoryFileError(file, `object ${i + 1} is not an object`)
    if (o.kind === 'Node' && o.apiVersion === 'v1') {
      const r = toNodeFacts(obj)
      if (!r.ok) throw new InventoryFileError(file, `object ${i + 1}: ${r.error}`)
      for (const s of r.skipped) summary.skipped.push(`object ${i + 1} (Node ${r.value.name}): ${s.reason}; left out`)
      apply.push(() => sink.upsertNode(r.value))
      summary.nodes++
    } else if (o.kind === 'NodeImageSet' && typeof o.apiVersion === 'string' && o.apiVersion.startsWith(`${GROUP}/`)) {
      const r = toNodeImages(obj)
      if (!r.ok) throw new InventoryFileError(file, `object ${i + 1}: ${r.error}`)
      apply.push(() => sink.upsertImages({ ...r.value, observedAt: now }))
      summary.imageSets++
    } else if (o.kind === 'Namespace' && o.apiVersion === 'v1' && typeof o.metadata?.name === 'string') {
      const name = o.metadata.name
      const mode = namespaceMode(obj)
      const pullable = namespacePullableRegistries(obj)
      const steer = namespaceSteer(obj)
      if (pullable.error !== undefined) {
        throw new InventoryFileError(
          file,
          `object ${i + 1}: namespace ${name}: annotation neverpull.dev/pullable-registries: ${pullable.error}`,
        )
      }
      apply.push(() => {
        sink.setNamespaceSeen(name, true)
        sink.setNamespaceMode(name, mode)
        sink.setNamespacePullableRegistries(name, pullable.value)
        sink.setNamespaceSteer(name, steer)
      })
      summary.namespaces++
    } else if (isRuntimeClass(obj)) {
      const r = toRuntimeClass(obj)
      if (!r.ok) throw new InventoryFileError(file, `object ${i + 1}: ${r.error}`)
      apply.push(() => sink.upsertRuntimeClass(r.value))
      summary.runtimeClasses++
    } else {
      summary.ignored++
    }
  }
  for (const f of apply) f()
  // `kubectl get ...,runtimeclasses` lists them all: a snapshot with any is taken as complete,
  // one with none says nothing about them (a name it lacks is unknown, not missing).
  if (summary.runtimeClasses > 0) sink.setRuntimeClassesComplete(true)
  return summary
}

export async function loadInventoryFile(file: string, sink: InventorySink, now: number): Promise<LoadSummary> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new InventoryFileError(file, `cannot read inventory: ${errorMessage(err)}`)
  }
  return loadInventoryText(text, file, sink, now)
}
