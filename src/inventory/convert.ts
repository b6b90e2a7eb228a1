import { Ajv, type ValidateFunction } from 'ajv'
import {
  MODE_LABEL,
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

const nodeSchema = {
  type: 'object',
  required: ['metadata'],
  properties: {
    metadata: {
      type: 'object',
      required: ['name'],
      properties: {
        name: { type: 'string', minLength: 1, maxLength: 253 },
        labels: { type: 'object', additionalProperties: { type: 'string' } },
      },
    },
    spec: {
      type: 'object',
      properties: {
        unschedulable: { type: 'boolean' },
        taints: {
          type: 'array',
          items: {
            type: 'object',
            required: ['key', 'effect'],
            properties: {
              key: { type: 'string' },
              value: { type: 'string' },
              effect: { type: 'string' },
            },
          },
        },
      },
    },
    status: {
      type: 'object',
      properties: {
        conditions: {
          type: 'array',
          items: {
            type: 'object',
            properties: { type: { type: 'string' }, status: { type: 'string' } },
          },
        },
        images: {
          type: 'array',
          items: {
            type: 'object',
            properties: { names: { type: 'array', items: { type: 'string' } } },
          },
        },
      },
    },
  },
} as const

const validateNodeImageSet: ValidateFunction = ajv.compile(nodeImageSetSchema)
const validateNode: ValidateFunction = ajv.compile(nodeSchema)

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
  }
  return { ok: true, value }
}

interface RawNode {
  metadata: { name: string; labels?: Record<string, string> }
  spec?: { unschedulable?: boolean; taints?: Array<{ key: string; value?: string; effect: string }> }
  status?: {
    conditions?: Array<{ type?: string; status?: string }>
    images?: Array<{ names?: string[] }>
  }
}

const EFFECTS: ReadonlySet<string> = new Set<TaintEffect>(['NoSchedule', 'PreferNoSchedule', 'NoExecute'])

export function toNodeFacts(obj: unknown): Converted<NodeFacts> {
  if (!validateNode(obj)) {
    return { ok: false, error: `malformed Node: ${describe(validateNode)}` }
  }
  const node = obj as RawNode
  const taints: Taint[] = []
  for (const t of node.spec?.taints ?? []) {
    if (!EFFECTS.has(t.effect)) continue
    const taint: Taint = { key: t.key, effect: t.effect as TaintEffect }
    if (t.value !== undefined && t.value !== '') taint.value = t.value
    taints.push(taint)
  }
  const readyCondition = node.status?.conditions?.find((c) => c.type === 'Ready')
  const ready = readyCondition === undefined ? undefined : readyCondition.status === 'True'
  const statusImageNames: string[] = []
  for (const image of node.status?.images ?? []) {
    for (const name of image.names ?? []) statusImageNames.push(name)
  }
  return {
    ok: true,
    value: {
      name: node.metadata.name,
      labels: { ...(node.metadata.labels ?? {}) },
      taints,
      unschedulable: node.spec?.unschedulable === true,
      ready,
      statusImageNames,
    },
  }
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
