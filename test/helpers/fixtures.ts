import { readFileSync } from 'node:fs'
import { InventoryIndex } from '../../src/inventory/index.js'
import { loadInventoryText } from '../../src/inventory/file.js'

export const FIXTURES = new URL('../fixtures/admission/', import.meta.url)
export const EXAMPLE_INVENTORY = new URL('../../examples/inventory.yaml', import.meta.url)

/** A real AdmissionReview as the apiserver sent it, parsed fresh for each use. */
export function review(name: string): Record<string, any> {
  return JSON.parse(readFileSync(new URL(`${name}.json`, FIXTURES), 'utf8'))
}

export function exampleInventory(now: number): InventoryIndex {
  const index = new InventoryIndex({ staleAfterMs: 15 * 60_000 })
  loadInventoryText(readFileSync(EXAMPLE_INVENTORY, 'utf8'), 'examples/inventory.yaml', index, now)
  return index
}
