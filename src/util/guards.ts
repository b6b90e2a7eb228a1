// Small helpers every layer needs for values from outside (JSON, YAML, errors): one home.

export type JsonObject = Record<string, unknown>

/** A JSON object: not null, not an array. */
export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** obj[key] when obj is a JSON object, else undefined. */
export function field(obj: unknown, key: string): unknown {
  return isObject(obj) ? obj[key] : undefined
}

/** The message of anything thrown. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
