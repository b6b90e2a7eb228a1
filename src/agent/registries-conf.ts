import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { errorMessage } from '../util/guards.js'

// The short-name configuration a CRI-O node resolves with, read as containers/image v5
// pkg/sysregistriesv2 (system_registries_v2.go) reads it for CRI-O:
//   - tryUpdatingCache: the main file (/etc/containers/registries.conf; missing = empty),
//     then every `*.conf` directly in registries.conf.d/ (dropInConfigs: filepath.WalkDir,
//     so lexical order, no subdirectories), each merged over the result so far;
//   - loadConfigFile: the main file may use the v1 format (`[registries.search]
//     registries = [...]`, converted to unqualified-search-registries), mixing v1 and v2 is
//     an error, and a drop-in must be v2;
//   - updateWithConfigurationFrom: a file that sets unqualified-search-registries (even to
//     []) replaces the list; [aliases] are merged name by name (later files win);
//   - newShortNameAliasCache: an alias name must be a short name without tag or digest, its
//     value a fully qualified name without tag or digest; a bad one fails the whole load.
// Then pkg/sysregistriesv2/shortnames.go ResolveShortNameAlias: the machine-written
// short-name-aliases.conf (/var/cache/containers/ for root) is consulted before them.

export const DEFAULT_REGISTRIES_CONF = '/etc/containers/registries.conf'
export const DEFAULT_REGISTRIES_CONF_DIR = '/etc/containers/registries.conf.d'
export const DEFAULT_ALIAS_CACHE = '/var/cache/containers/short-name-aliases.conf'

export interface RegistriesConfPaths {
  path: string
  dir: string
  /** short-name-aliases.conf; missing is fine. */
  aliasCache?: string
}

export class RegistriesConfError extends Error {
  override readonly name = 'RegistriesConfError'
}

/** What the agent publishes in spec.runtime (the webhook's src/image/crio.ts ShortNameConfig). */
export interface ShortNameSettings {
  unqualifiedSearchRegistries: string[]
  shortNameAliases: Record<string, string>
}

export interface ReadResult {
  config: ShortNameSettings
  /** The files read, in merge order. */
  files: string[]
}

type Toml = Record<string, unknown>

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new RegistriesConfError(`cannot read ${path}: ${errorMessage(err)}`)
  }
}

function stringList(value: unknown, where: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string'))
    throw new RegistriesConfError(`${where} must be a list of strings`)
  return value
}

function table(value: unknown, where: string): Toml {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new RegistriesConfError(`${where} must be a table`)
  return value as Toml
}

/** A first path component that names a registry (shortnames.parseUnnormalizedShortName). */
function hasRegistry(name: string): boolean {
  const slash = name.indexOf('/')
  if (slash < 0) return false
  const first = name.slice(0, slash)
  return first.includes('.') || first.includes(':') || first === 'localhost'
}

function hasTagOrDigest(name: string): boolean {
  return name.includes('@') || name.lastIndexOf(':') > name.lastIndexOf('/')
}

/**
 * The shape checks of newShortNameAliasCache. The agent may not parse references (it sits
 * beside, not above, src/image); the webhook parses every alias value with the full grammar
 * and treats one that does not parse as CRI-O does: no image by that name.
 */
function validateAliases(raw: Toml, file: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(raw)) {
    if (typeof value !== 'string')
      throw new RegistriesConfError(`${file}: alias ${JSON.stringify(name)} must be a string`)
    if (name === '' || hasTagOrDigest(name) || hasRegistry(name)) {
      throw new RegistriesConfError(
        `${file}: alias name ${JSON.stringify(name)} must be a short name without tag or digest`,
      )
    }
    // An empty value removes an alias (short-name-aliases.conf).
    if (value !== '' && (hasTagOrDigest(value) || !hasRegistry(value))) {
      throw new RegistriesConfError(
        `${file}: alias ${JSON.stringify(name)} = ${JSON.stringify(value)}: the value must be a fully qualified name without tag or digest`,
      )
    }
    out[name] = value
  }
  return out
}

interface Layer {
  usr: string[] | undefined
  aliases: Record<string, string>
}

function layerOf(doc: Toml, file: string, dropIn: boolean): Layer {
  const v1 = doc['registries'] === undefined ? undefined : table(doc['registries'], `${file}: [registries]`)
  const v1Search =
    v1?.['search'] === undefined
      ? []
      : stringList(
          table(v1['search'], `${file}: [registries.search]`)['registries'] ?? [],
          `${file}: registries.search.registries`,
        )
  const v1Set =
    v1 !== undefined &&
    ['search', 'insecure', 'block'].some((k) => {
      const t = v1[k]
      return (
        t !== undefined &&
        Array.isArray((t as Toml)['registries']) &&
        ((t as Toml)['registries'] as unknown[]).length > 0
      )
    })
  const v2Set = ['unqualified-search-registries', 'registry', 'aliases', 'short-name-mode', 'credential-helpers'].some(
    (k) => doc[k] !== undefined,
  )
  if (v1Set) {
    if (dropIn)
      throw new RegistriesConfError(
        `${file}: a registries.conf.d drop-in must use the v2 format, not [registries.search]`,
      )
    if (v2Set) throw new RegistriesConfError(`${file}: mixes the v1 format ([registries.search]) with v2 settings`)
    return { usr: v1Search, aliases: {} }
  }
  const usrRaw = doc['unqualified-search-registries']
  const usr = usrRaw === undefined ? undefined : stringList(usrRaw, `${file}: unqualified-search-registries`)
  const aliases = doc['aliases'] === undefined ? {} : validateAliases(table(doc['aliases'], `${file}: [aliases]`), file)
  return { usr, aliases }
}

/** Reads registries.conf, its drop-ins and the alias cache the way CRI-O's containers/image does. */
export async function readShortNameConfig(paths: RegistriesConfPaths): Promise<ReadResult> {
  const files: string[] = []
  let usr: string[] = []
  let aliases: Record<string, string> = {}
  const apply = (layer: Layer) => {
    if (layer.usr !== undefined) usr = layer.usr
    aliases = { ...aliases, ...layer.aliases }
  }
  const main = await readIfExists(paths.path)
  if (main !== undefined) {
    apply(layerOf(parseToml(main, paths.path), paths.path, false))
    files.push(paths.path)
  }
  let names: string[] = []
  try {
    names = (await readdir(paths.dir, { withFileTypes: true }))
      .filter((e) => !e.isDirectory() && e.name.endsWith('.conf'))
      .map((e) => e.name)
      .sort()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new RegistriesConfError(`cannot read ${paths.dir}: ${errorMessage(err)}`)
  }
  for (const name of names) {
    const file = join(paths.dir, name)
    const text = await readIfExists(file)
    if (text === undefined) continue
    apply(layerOf(parseToml(text, file), file, true))
    files.push(file)
  }
  if (paths.aliasCache !== undefined) {
    const text = await readIfExists(paths.aliasCache)
    if (text !== undefined) {
      const doc = parseToml(text, paths.aliasCache)
      if (doc['aliases'] !== undefined)
        aliases = {
          ...aliases,
          ...validateAliases(table(doc['aliases'], `${paths.aliasCache}: [aliases]`), paths.aliasCache),
        }
      files.push(paths.aliasCache)
    }
  }
  const shortNameAliases: Record<string, string> = {}
  for (const name of Object.keys(aliases).sort()) if (aliases[name] !== '') shortNameAliases[name] = aliases[name]!
  return { config: { unqualifiedSearchRegistries: usr, shortNameAliases }, files }
}

// ---- TOML: what registries.conf files use (tables, arrays of tables, strings of all four
// kinds, arrays, inline tables, booleans, numbers, dates kept as text). Errors name file:line.

export function parseToml(text: string, file: string): Toml {
  let i = 0
  const root: Toml = {}
  let current: Toml = root
  const fail = (message: string): never => {
    const line = text.slice(0, i).split('\n').length
    throw new RegistriesConfError(`${file}:${line}: ${message}`)
  }
  const skipWs = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++
  }
  const skipWsNlComments = () => {
    for (;;) {
      while (i < text.length && /[ \t\r\n]/.test(text[i]!)) i++
      if (text[i] === '#') while (i < text.length && text[i] !== '\n') i++
      else return
    }
  }
  const endOfLine = () => {
    skipWs()
    if (text[i] === '#') while (i < text.length && text[i] !== '\n') i++
    if (text[i] === '\r') i++
    if (i < text.length && text[i] !== '\n') fail(`unexpected ${JSON.stringify(text[i])} after a value`)
    i++
  }
  const basicString = (): string => {
    const multi = text.startsWith('"""', i)
    i += multi ? 3 : 1
    if (multi && text[i] === '\n') i++
    let out = ''
    for (;;) {
      if (i >= text.length) fail('unterminated string')
      const c = text[i]!
      if (multi ? text.startsWith('"""', i) : c === '"') {
        i += multi ? 3 : 1
        return out
      }
      if (!multi && c === '\n') fail('newline in a string')
      if (c === '\\') {
        const e = text[i + 1]
        const simple: Record<string, string> = { b: '\b', t: '\t', n: '\n', f: '\f', r: '\r', '"': '"', '\\': '\\' }
        if (e !== undefined && simple[e] !== undefined) {
          out += simple[e]
          i += 2
        } else if (e === 'u' || e === 'U') {
          const n = e === 'u' ? 4 : 8
          const hex = text.slice(i + 2, i + 2 + n)
          if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== n) fail('bad unicode escape')
          out += String.fromCodePoint(parseInt(hex, 16))
          i += 2 + n
        } else if (multi && (e === '\n' || e === ' ' || e === '\t' || e === '\r')) {
          i++
          while (i < text.length && /[ \t\r\n]/.test(text[i]!)) i++
        } else fail(`bad escape \\${e ?? ''}`)
        continue
      }
      out += c
      i++
    }
  }
  const literalString = (): string => {
    const multi = text.startsWith("'''", i)
    i += multi ? 3 : 1
    if (multi && text[i] === '\n') i++
    const end = text.indexOf(multi ? "'''" : "'", i)
    if (end < 0) fail('unterminated string')
    const out = text.slice(i, end)
    if (!multi && out.includes('\n')) fail('newline in a string')
    i = end + (multi ? 3 : 1)
    return out
  }
  const key = (): string => {
    skipWs()
    const c = text[i]
    if (c === '"') return basicString()
    if (c === "'") return literalString()
    const m = /^[A-Za-z0-9_-]+/.exec(text.slice(i, i + 256))
    if (m === null) fail('expected a key')
    i += m![0].length
    return m![0]
  }
  const dottedKey = (): string[] => {
    const parts = [key()]
    for (;;) {
      skipWs()
      if (text[i] !== '.') return parts
      i++
      parts.push(key())
    }
  }
  const value = (): unknown => {
    skipWs()
    const c = text[i]
    if (c === '"') return basicString()
    if (c === "'") return literalString()
    if (c === '[') {
      i++
      const out: unknown[] = []
      for (;;) {
        skipWsNlComments()
        if (text[i] === ']') {
          i++
          return out
        }
        out.push(value())
        skipWsNlComments()
        if (text[i] === ',') i++
        else if (text[i] !== ']') fail('expected "," or "]" in an array')
      }
    }
    if (c === '{') {
      i++
      const out: Toml = {}
      skipWs()
      if (text[i] === '}') {
        i++
        return out
      }
      for (;;) {
        const path = dottedKey()
        skipWs()
        if (text[i] !== '=') fail('expected "=" in an inline table')
        i++
        assign(out, path, value())
        skipWs()
        if (text[i] === ',') i++
        else if (text[i] === '}') {
          i++
          return out
        } else fail('expected "," or "}" in an inline table')
      }
    }
    const m = /^[^\s,\]}#]+/.exec(text.slice(i, i + 128))
    if (m === null) fail('expected a value')
    const raw = m![0]
    i += raw.length
    if (raw === 'true') return true
    if (raw === 'false') return false
    if (/^[+-]?(?:\d[\d_]*)(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?$/.test(raw)) return Number(raw.replaceAll('_', ''))
    if (
      /^(?:0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+|[+-]?(?:inf|nan))$/.test(raw) ||
      /^\d{4}-\d{2}-\d{2}/.test(raw) ||
      /^\d{2}:\d{2}/.test(raw)
    )
      return raw
    return fail(`unexpected ${JSON.stringify(raw)}`)
  }
  const assign = (target: Toml, path: string[], v: unknown) => {
    let t = target
    for (const part of path.slice(0, -1)) {
      const next = t[part] ?? (t[part] = {})
      if (typeof next !== 'object' || next === null || Array.isArray(next))
        fail(`key ${JSON.stringify(part)} is not a table`)
      t = next as Toml
    }
    const last = path[path.length - 1]!
    if (Object.hasOwn(t, last)) fail(`duplicate key ${JSON.stringify(path.join('.'))}`)
    t[last] = v
  }
  const descend = (path: string[], arrayTable: boolean): Toml => {
    let t = root
    path.forEach((part, n) => {
      const lastPart = n === path.length - 1
      let next = t[part]
      if (lastPart && arrayTable) {
        if (next === undefined) t[part] = next = []
        if (!Array.isArray(next)) fail(`${JSON.stringify(part)} is not an array of tables`)
        const fresh: Toml = {}
        ;(next as unknown[]).push(fresh)
        t = fresh
        return
      }
      if (next === undefined) t[part] = next = {}
      if (Array.isArray(next)) next = next[next.length - 1]
      if (typeof next !== 'object' || next === null) fail(`${JSON.stringify(part)} is not a table`)
      t = next as Toml
    })
    return t
  }
  for (;;) {
    skipWsNlComments()
    if (i >= text.length) return root
    if (text[i] === '[') {
      const arrayTable = text[i + 1] === '['
      i += arrayTable ? 2 : 1
      const path = dottedKey()
      skipWs()
      if (!text.startsWith(arrayTable ? ']]' : ']', i)) fail('unterminated table header')
      i += arrayTable ? 2 : 1
      current = descend(path, arrayTable)
      endOfLine()
      continue
    }
    const path = dottedKey()
    skipWs()
    if (text[i] !== '=') fail('expected "=" after a key')
    i++
    assign(current, path, value())
    endOfLine()
  }
}
