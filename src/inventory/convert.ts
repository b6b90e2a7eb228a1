import { Ajv, type ValidateFunction } from 'ajv'
import {
  MODE_LABEL,
  STEER_LABEL,
  type Mode,
  type NodeFacts,
  type NodeImages,
  type NodeImageSetSpec,
  type NodeImageSetStatus,
  type Taint,
  type TaintEffect,
} from '../api/types.js'
import { NODE_IMAGE_SET_SCHEMA } from '../api/nodeimageset-schema.js'
import { toJsonSchema } from '../api/openapi.js'
import { parsePullableRegistries, PULLABLE_REGISTRIES_ANNOTATION, type PullableRegistries } from '../api/registries.js'
import { isObject, type JsonObject } from '../util/guards.js'

// Inventory objects come from the API server (or a file a person wrote): validate before
// trusting, and turn a bad object into a reason string rather than an exception, so one
// malformed NodeImageSet never costs the data we already hold for other nodes.

export type Converted<T> = { ok: true; value: T } | { ok: false; error: string }

const ajv = new Ajv({ allErrors: false, strict: false, validateFormats: false })

// The reader's NodeImageSet schema is the CRD's (one source: src/api/nodeimageset-schema.ts),
// so it refuses only what the apiserver would have refused anyway. Two differences: the
// CRD cannot constrain metadata, and the reader needs a name; formats are not checked
// here (an observedTime the apiserver took but Date.parse cannot read means "never observed").
const crdJsonSchema = toJsonSchema(NODE_IMAGE_SET_SCHEMA)
const nodeImageSetSchema = {
  ...crdJsonSchema,
  required: ['metadata', 'spec'],
  properties: {
    ...(crdJsonSchema['properties'] as Record<string, unknown>),
    metadata: {
      type: 'object',
      required: ['name'],
      properties: { name: { type: 'string', minLength: 1, maxLength: 253 } },
    },
  },
}

const validateNodeImageSet: ValidateFunction = ajv.compile(nodeImageSetSchema)

function describe(validate: ValidateFunction): string {
  const e = validate.errors?.[0]
  if (e === undefined) return 'invalid object'
  return `${e.instancePath === '' ? '(root)' : e.instancePath} ${e.message ?? 'is invalid'}`
}

interface RawNodeImageSet {
  metadata: { name: string }
  spec: NodeImageSetSpec
  status?: NodeImageSetStatus
}

export function toNodeImages(obj: unknown): Converted<NodeImages> {
  if (!validateNodeImageSet(obj)) {
    return { ok: false, error: `malformed NodeImageSet: ${describe(validateNodeImageSet)}` }
  }
  const set = obj as RawNodeImageSet
  const nodeName = set.spec.nodeName
  if (nodeName !== set.metadata.name) {
    return {
      ok: false,
      error: `NodeImageSet ${set.metadata.name} names node ${nodeName}: the object must be named after its node`,
    }
  }
  const observed = set.status?.observedTime
  const observedAt = observed === undefined ? Number.NaN : Date.parse(observed)
  const runtime = set.spec.runtime
  const value: NodeImages = {
    nodeName,
    images: set.spec.images.map((i) => ({
      id: i.id,
      repoTags: i.repoTags ?? [],
      repoDigests: i.repoDigests ?? [],
      size: typeof i.size === 'string' ? Number(i.size) : (i.size ?? 0),
      pinned: i.pinned ?? false,
    })),
    observedAt,
  }
  if (runtime !== undefined) {
    value.runtime = { name: runtime.name ?? '', version: runtime.version ?? '', endpoint: runtime.endpoint ?? '' }
    if (runtime.unqualifiedSearchRegistries !== undefined)
      value.runtime.unqualifiedSearchRegistries = [...runtime.unqualifiedSearchRegistries]
    if (runtime.shortNameAliases !== undefined) value.runtime.shortNameAliases = { ...runtime.shortNameAliases }
  }
  const elsewhere = set.spec.imagesElsewhere
  if (elsewhere !== undefined && elsewhere.length > 0) value.elsewhere = elsewhere
  const fs = set.status?.imageFilesystem
  if (fs !== undefined) value.imageFilesystem = fs
  return { ok: true, value }
}

// A Node is read field by field, never validated as a whole: kubelets of the supported
// versions send what their Go types serialise to, and that differs (1.19 sends
// `"names": null` for an image that lost its last tag, newer ones `[]` or nothing; a
// nil slice or map is `null`; nodeInfo, conditions and images may be absent). Refusing
// the object for one such field would freeze everything else we know of the node (labels,
// taints, cordon, status.images). So null and absent mean "none", and a value that cannot
// be understood is left out alone and named in `skipped`; only a Node without a name is
// unusable.

/** A field of an otherwise usable object that could not be understood and was left out. */
export interface SkippedField {
  /** Fixed path without indexes, e.g. `status.images.names`: fit for a metric label. */
  field: string
  /** The place and what was there, e.g. `status.images[3].names is a string, not a list`. */
  reason: string
}

export type NodeRead = { ok: true; value: NodeFacts; skipped: SkippedField[] } | { ok: false; error: string }

/** What a JSON value is, in the words of the reason strings. */
function kindOf(value: unknown): string {
  if (Array.isArray(value)) return 'a list'
  if (value === null) return 'null'
  if (typeof value === 'object') return 'an object'
  if (typeof value === 'string') return 'a string'
  if (typeof value === 'number') return 'a number'
  if (typeof value === 'boolean') return 'a boolean'
  return typeof value
}

class FieldReader {
  readonly skipped: SkippedField[] = []

  skip(field: string, at: string, found: unknown, wanted: string): void {
    this.skipped.push({ field, reason: `${at} is ${kindOf(found)}, not ${wanted}` })
  }

  /** An object field: absent or null is `{}`, anything else but an object is skipped. */
  object(parent: JsonObject, key: string, field: string, at: string): JsonObject {
    const value = parent[key]
    if (value === undefined || value === null) return {}
    if (isObject(value)) return value
    this.skip(field, at, value, 'an object')
    return {}
  }

  /** A list field: absent or null is `[]`, anything else but a list is skipped. */
  list(parent: JsonObject, key: string, field: string, at: string): unknown[] {
    const value = parent[key]
    if (value === undefined || value === null) return []
    if (Array.isArray(value)) return value
    this.skip(field, at, value, 'a list')
    return []
  }
}

const EFFECTS: ReadonlySet<string> = new Set<TaintEffect>(['NoSchedule', 'PreferNoSchedule', 'NoExecute'])

export function toNodeFacts(obj: unknown): NodeRead {
  if (!isObject(obj)) return { ok: false, error: `malformed Node: (root) is ${kindOf(obj)}, not an object` }
  const metadata = obj['metadata']
  const name = isObject(metadata) ? metadata['name'] : undefined
  if (typeof name !== 'string' || name === '')
    return { ok: false, error: 'malformed Node: /metadata/name must be a non-empty string' }
  const r = new FieldReader()

  const labels: Record<string, string> = {}
  const rawLabels = r.object(metadata as JsonObject, 'labels', 'metadata.labels', 'metadata.labels')
  for (const key in rawLabels) {
    const value = rawLabels[key]
    if (typeof value === 'string') labels[key] = value
    else r.skip('metadata.labels', `metadata.labels[${JSON.stringify(key)}]`, value, 'a string')
  }

  const spec = r.object(obj, 'spec', 'spec', 'spec')
  let unschedulable = false
  const cordon = spec['unschedulable']
  if (typeof cordon === 'boolean') unschedulable = cordon
  else if (cordon !== undefined && cordon !== null)
    r.skip('spec.unschedulable', 'spec.unschedulable', cordon, 'a boolean')

  const taints: Taint[] = []
  for (const [i, t] of r.list(spec, 'taints', 'spec.taints', 'spec.taints').entries()) {
    const key = isObject(t) ? t['key'] : undefined
    const effect = isObject(t) ? t['effect'] : undefined
    const value = isObject(t) ? t['value'] : undefined
    if (
      !isObject(t) ||
      typeof key !== 'string' ||
      typeof effect !== 'string' ||
      (value !== undefined && value !== null && typeof value !== 'string')
    ) {
      r.skip('spec.taints', `spec.taints[${i}]`, t, 'a taint with a string key, effect and value')
      continue
    }
    // An effect this version does not know filters nothing, for the scheduler as for us.
    if (!EFFECTS.has(effect)) continue
    const taint: Taint = { key, effect: effect as TaintEffect }
    if (typeof value === 'string' && value !== '') taint.value = value
    taints.push(taint)
  }

  const status = r.object(obj, 'status', 'status', 'status')
  let ready: boolean | undefined
  for (const [i, c] of r.list(status, 'conditions', 'status.conditions', 'status.conditions').entries()) {
    if (!isObject(c)) {
      r.skip('status.conditions', `status.conditions[${i}]`, c, 'an object')
      continue
    }
    if (c['type'] === 'Ready' && ready === undefined) ready = c['status'] === 'True'
  }

  const statusImageNames: string[] = []
  for (const [i, image] of r.list(status, 'images', 'status.images', 'status.images').entries()) {
    if (!isObject(image)) {
      r.skip('status.images', `status.images[${i}]`, image, 'an object')
      continue
    }
    for (const [j, n] of r.list(image, 'names', 'status.images.names', `status.images[${i}].names`).entries()) {
      if (typeof n === 'string') statusImageNames.push(n)
      else r.skip('status.images.names', `status.images[${i}].names[${j}]`, n, 'a string')
    }
  }

  return { ok: true, value: { name, labels, taints, unschedulable, ready, statusImageNames }, skipped: r.skipped }
}

const MODES: ReadonlySet<string> = new Set<Mode>(['enforce', 'warn', 'audit', 'off'])

export function isMode(value: unknown): value is Mode {
  return typeof value === 'string' && MODES.has(value)
}

/** The namespace's mode from its `neverpull.dev/mode` label; unknown values count as unset. */
export function namespaceMode(obj: unknown): Mode | undefined {
  if (typeof obj !== 'object' || obj === null) return undefined
  const labels = (obj as { metadata?: { labels?: Record<string, unknown> } }).metadata?.labels
  const value = labels?.[MODE_LABEL]
  return isMode(value) ? value : undefined
}

/**
 * The namespace's `neverpull.dev/pullable-registries` annotation: `value` undefined when
 * absent or unreadable (the webhook's flag applies), `error` saying why it was unreadable.
 */
export function namespacePullableRegistries(obj: unknown): { value: PullableRegistries | undefined; error?: string } {
  if (typeof obj !== 'object' || obj === null) return { value: undefined }
  const annotations = (obj as { metadata?: { annotations?: Record<string, unknown> } }).metadata?.annotations
  const text = annotations?.[PULLABLE_REGISTRIES_ANNOTATION]
  if (text === undefined) return { value: undefined }
  if (typeof text !== 'string') return { value: undefined, error: 'not a string' }
  const parsed = parsePullableRegistries(text)
  return parsed.ok ? { value: parsed.value } : { value: undefined, error: parsed.error }
}

/** The namespace's `neverpull.dev/steer` label: `true`, `false`, or undefined when absent or another value. */
export function namespaceSteer(obj: unknown): boolean | undefined {
  if (typeof obj !== 'object' || obj === null) return undefined
  const labels = (obj as { metadata?: { labels?: Record<string, unknown> } }).metadata?.labels
  const value = labels?.[STEER_LABEL]
  return value === 'true' ? true : value === 'false' ? false : undefined
}
