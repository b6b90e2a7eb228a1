import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { errorMessage } from '../util/guards.js'

// Manifests as people and CI have them: files, directories, stdin; multi-document YAML,
// JSON, `List` objects, Helm or kustomize output piped in.

export interface ManifestObject {
  /** File name as given (`-` for stdin). */
  source: string
  /** 1-based document number in the source. */
  document: number
  object: Record<string, unknown>
}

export class ManifestError extends Error {
  override readonly name = 'ManifestError'
}

const EXTENSIONS = /\.(ya?ml|json)$/i

async function expand(path: string): Promise<string[]> {
  let info
  try {
    info = await stat(path)
  } catch (err) {
    throw new ManifestError(
      `${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : errorMessage(err)}`,
    )
  }
  if (!info.isDirectory()) return [path]
  const out: string[] = []
  const entries = await readdir(path, { withFileTypes: true })
  entries.sort((a, b) => (a.name < b.name ? -1 : 1))
  for (const e of entries) {
    const child = join(path, e.name)
    if (e.isDirectory()) out.push(...(await expand(child)))
    else if (EXTENSIONS.test(e.name)) out.push(child)
  }
  return out
}

function flatten(value: unknown, source: string, document: number, out: ManifestObject[]): void {
  if (value === null || value === undefined) return
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ManifestError(
      `${source}: document ${document} is not a Kubernetes object (got ${Array.isArray(value) ? 'a list' : typeof value})`,
    )
  }
  const obj = value as Record<string, unknown>
  if (typeof obj['kind'] !== 'string' || typeof obj['apiVersion'] !== 'string') {
    throw new ManifestError(`${source}: document ${document} has no apiVersion and kind`)
  }
  if (obj['kind'].endsWith('List') && Array.isArray(obj['items'])) {
    for (const item of obj['items']) flatten(item, source, document, out)
    return
  }
  out.push({ source, document, object: obj })
}

export function parseManifests(text: string, source: string): ManifestObject[] {
  const out: ManifestObject[] = []
  const docs = parseAllDocuments(text)
  for (const [i, doc] of docs.entries()) {
    const error = doc.errors[0]
    if (error !== undefined) {
      throw new ManifestError(`${source}: document ${i + 1}: ${error.message.split('\n')[0]}`)
    }
    flatten(doc.toJS({ maxAliasCount: 100 }), source, i + 1, out)
  }
  return out
}

export async function readManifests(paths: string[], stdin: () => Promise<string>): Promise<ManifestObject[]> {
  const out: ManifestObject[] = []
  for (const path of paths) {
    if (path === '-') {
      out.push(...parseManifests(await stdin(), '-'))
      continue
    }
    for (const file of await expand(path)) {
      let text: string
      try {
        text = await readFile(file, 'utf8')
      } catch (err) {
        throw new ManifestError(`${file}: ${errorMessage(err)}`)
      }
      out.push(...parseManifests(text, file))
    }
  }
  return out
}
