import { normaliseRegistry } from '../api/registries.js'
import { parseReference } from './reference.js'

// The registry of an image reference, for the pullable-registries rule (src/api/registries.ts).

/** The registry of an image reference, normalised; undefined when it does not parse (or is an image ID). */
export function registryOf(image: string): string | undefined {
  if (image.startsWith('sha256:')) return undefined
  const parsed = parseReference(image)
  if (!parsed.ok || parsed.ref.domain === '') return undefined
  return normaliseRegistry(parsed.ref.domain)
}
