// The subset of the apiserver's JSONSchemaProps (k8s.io/apiextensions-apiserver
// pkg/apis/apiextensions/v1 types_jsonschema.go) our CRD schemas use, and the one way to
// turn such a schema into plain JSON Schema for Ajv.

export interface OpenApiSchema {
  /** The TypeScript type name `npm run generate` gives this object (also valid in a CRD). */
  title?: string
  description?: string
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean'
  format?: string
  enum?: readonly string[]
  required?: readonly string[]
  properties?: Readonly<Record<string, OpenApiSchema>>
  additionalProperties?: OpenApiSchema
  items?: OpenApiSchema
  minimum?: number
  maximum?: number
  minLength?: number
  maxLength?: number
  maxItems?: number
  maxProperties?: number
  pattern?: string
  nullable?: boolean
  'x-kubernetes-int-or-string'?: true
  'x-kubernetes-preserve-unknown-fields'?: true
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map'
  'x-kubernetes-list-map-keys'?: readonly string[]
}

export interface JsonSchemaOptions {
  /**
   * Refuse undeclared fields (`additionalProperties: false`) where the apiserver would
   * prune them. Off for readers: a field the apiserver pruned never reaches them, and one
   * it did not know of in a file costs nothing.
   */
  closed?: boolean
}

/**
 * The JSON Schema that accepts what the apiserver's structural-schema validation accepts:
 * `x-kubernetes-int-or-string` becomes integer-or-string, the other extensions and
 * descriptions go. `format` stays; callers choose whether their Ajv checks formats.
 */
export function toJsonSchema(node: OpenApiSchema, options: JsonSchemaOptions = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(node) as Array<[keyof OpenApiSchema, unknown]>) {
    if (key === 'x-kubernetes-int-or-string') out['type'] = ['integer', 'string']
    else if (key.startsWith('x-kubernetes-') || key === 'description' || key === 'title' || key === 'nullable') continue
    else if (key === 'format' && (value === 'int32' || value === 'int64')) continue
    else if (key === 'properties') {
      out[key] = Object.fromEntries(
        Object.entries(value as Record<string, OpenApiSchema>).map(([name, schema]) => [
          name,
          toJsonSchema(schema, options),
        ]),
      )
    } else if (key === 'items' || key === 'additionalProperties')
      out[key] = toJsonSchema(value as OpenApiSchema, options)
    else out[key] = value
  }
  if (node.nullable === true && typeof node.type === 'string') out['type'] = [node.type, 'null']
  if (
    options.closed === true &&
    node.properties !== undefined &&
    node['x-kubernetes-preserve-unknown-fields'] !== true
  ) {
    out['additionalProperties'] = false
  }
  return out
}
