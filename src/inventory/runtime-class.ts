import type { RuntimeClassFacts } from '../api/types.js'
import { readToleration } from '../api/scheduling.js'
import { errorMessage, isObject, type JsonObject } from '../util/guards.js'

// RuntimeClass objects (node.k8s.io/v1, and v1beta1 on 1.19, whose fields sit at the same
// place: `handler` and `scheduling{nodeSelector, tolerations}` at the top level). Read field
// by field: a RuntimeClass the webhook cannot read is an error naming the field, never a
// half-read scheduling that would widen or narrow placement silently.

export const RUNTIME_CLASS_GROUP = 'node.k8s.io'
/** Newest first: the watch lists the first one served. */
export const RUNTIME_CLASS_VERSIONS = ['v1', 'v1beta1'] as const

export type RuntimeClassRead = { ok: true; value: RuntimeClassFacts } | { ok: false; error: string }

export function isRuntimeClass(obj: unknown): boolean {
  if (!isObject(obj) || obj['kind'] !== 'RuntimeClass') return false
  const apiVersion = obj['apiVersion']
  return RUNTIME_CLASS_VERSIONS.some((v) => apiVersion === `${RUNTIME_CLASS_GROUP}/${v}`)
}

function fail(path: string, what: string): never {
  throw new Error(`${path} ${what}`)
}

function optionalString(obj: JsonObject, key: string, at: string): string | undefined {
  const v = obj[key]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') fail(`${at}.${key}`, 'must be a string')
  return v
}

export function toRuntimeClass(obj: unknown): RuntimeClassRead {
  try {
    if (!isObject(obj)) throw new Error('a RuntimeClass must be an object')
    const metadata = obj['metadata']
    const name = isObject(metadata) ? metadata['name'] : undefined
    if (typeof name !== 'string' || name === '') throw new Error('RuntimeClass without metadata.name')
    const value: RuntimeClassFacts = {
      name,
      handler: optionalString(obj, 'handler', 'RuntimeClass') ?? '',
      tolerations: [],
    }
    const scheduling = obj['scheduling']
    if (scheduling === undefined || scheduling === null) return { ok: true, value }
    if (!isObject(scheduling)) throw new Error(`RuntimeClass ${name}: scheduling must be an object`)
    const selector = scheduling['nodeSelector']
    if (selector !== undefined && selector !== null) {
      if (!isObject(selector))
        throw new Error(`RuntimeClass ${name}: scheduling.nodeSelector must be an object of strings`)
      const copy: Record<string, string> = {}
      for (const key of Object.keys(selector)) {
        const v = selector[key]
        if (typeof v !== 'string')
          throw new Error(`RuntimeClass ${name}: scheduling.nodeSelector.${key} must be a string`)
        copy[key] = v
      }
      value.nodeSelector = copy
    }
    const tolerations = scheduling['tolerations']
    if (tolerations !== undefined && tolerations !== null) {
      if (!Array.isArray(tolerations)) throw new Error(`RuntimeClass ${name}: scheduling.tolerations must be a list`)
      tolerations.forEach((t, i) => {
        const at = `RuntimeClass ${name}: scheduling.tolerations[${i}]`
        if (!isObject(t)) fail(at, 'must be an object')
        value.tolerations.push(readToleration(t, at, fail))
      })
    }
    return { ok: true, value }
  } catch (err) {
    return { ok: false, error: errorMessage(err) }
  }
}
