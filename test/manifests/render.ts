// A deliberately small kustomize: resources (files and kustomization directories),
// components, images, patches that are either RFC 6902 lists on an explicit target or
// a strategic-merge "$patch: delete", and ConfigMaps generated from files without a name hash. Anything else in a kustomization is an error here,
// so the manifests can only use what this file reproduces faithfully (the kubectl test
// compares the two when kubectl is installed).
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parse, parseAllDocuments } from 'yaml'

export interface K8sObject {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
  [key: string]: unknown
}

export interface Target {
  group?: string
  version?: string
  kind?: string
  name?: string
  namespace?: string
}

export interface Patch {
  path?: string
  patch?: string
  target?: Target
}

export interface ImageSetting {
  name: string
  newName?: string
  newTag?: string
  digest?: string
}

export interface ConfigMapGenerator {
  name: string
  namespace?: string
  /** `path` (key = file name) or `key=path`. */
  files?: string[]
  options?: { disableNameSuffixHash?: boolean; labels?: Record<string, string>; annotations?: Record<string, string> }
}

export interface Kustomization {
  apiVersion?: string
  kind?: string
  resources?: string[]
  components?: string[]
  patches?: Patch[]
  images?: ImageSetting[]
  configMapGenerator?: ConfigMapGenerator[]
}

const SUPPORTED = new Set(['apiVersion', 'kind', 'resources', 'components', 'patches', 'images', 'configMapGenerator'])
const GENERATOR_KEYS = new Set(['name', 'namespace', 'files', 'options'])
const GENERATOR_OPTIONS = new Set(['disableNameSuffixHash', 'labels', 'annotations'])
const TARGET_KEYS = new Set(['group', 'version', 'kind', 'name', 'namespace'])

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export function readKustomization(dir: string): Kustomization {
  for (const file of ['kustomization.yaml', 'kustomization.yml', 'Kustomization']) {
    const p = join(dir, file)
    if (existsSync(p)) {
      const k: unknown = parse(readFileSync(p, 'utf8'))
      if (!isObject(k)) throw new Error(`${p}: not a mapping`)
      for (const key of Object.keys(k)) {
        if (!SUPPORTED.has(key)) throw new Error(`${p}: "${key}" is not supported by the test renderer`)
      }
      return k
    }
  }
  throw new Error(`${dir}: no kustomization file`)
}

export function readObjects(file: string): K8sObject[] {
  const out: K8sObject[] = []
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]?.message}`)
    const v: unknown = doc.toJS()
    if (v === null || v === undefined) continue
    if (!isObject(v)) throw new Error(`${file}: a document is not a mapping`)
    out.push(v as K8sObject)
  }
  return out
}

export function groupOf(apiVersion: string): string {
  const i = apiVersion.indexOf('/')
  return i < 0 ? '' : apiVersion.slice(0, i)
}

export function versionOf(apiVersion: string): string {
  const i = apiVersion.indexOf('/')
  return i < 0 ? apiVersion : apiVersion.slice(i + 1)
}

export function idOf(o: K8sObject): string {
  return `${o.apiVersion}/${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`
}

/** Renders the kustomization in `dir` (a Kustomization, not a Component). */
export function render(dir: string): K8sObject[] {
  const k = readKustomization(dir)
  if (k.kind !== undefined && k.kind !== 'Kustomization') throw new Error(`${dir}: kind ${k.kind} cannot be built on its own`)
  return build(k, dir)
}

/** Builds an in-memory kustomization whose relative paths resolve against `dir`. */
export function build(k: Kustomization, dir: string): K8sObject[] {
  let objects: K8sObject[] = []
  for (const r of k.resources ?? []) {
    const p = resolve(dir, r)
    if (statSync(p).isDirectory()) objects.push(...render(p))
    else objects.push(...readObjects(p))
  }
  objects.push(...generateConfigMaps(k, dir))
  checkUnique(objects, dir)
  for (const c of k.components ?? []) {
    const cdir = resolve(dir, c)
    const ck = readKustomization(cdir)
    if (ck.kind !== 'Component') throw new Error(`${cdir}: a component must have kind Component`)
    objects = applyLayer(ck, cdir, objects)
  }
  return applyTransforms(k, dir, objects)
}

function applyLayer(k: Kustomization, dir: string, input: K8sObject[]): K8sObject[] {
  let objects = [...input]
  for (const r of k.resources ?? []) {
    const p = resolve(dir, r)
    if (statSync(p).isDirectory()) objects.push(...render(p))
    else objects.push(...readObjects(p))
  }
  objects.push(...generateConfigMaps(k, dir))
  checkUnique(objects, dir)
  for (const c of k.components ?? []) {
    const cdir = resolve(dir, c)
    objects = applyLayer(readKustomization(cdir), cdir, objects)
  }
  return applyTransforms(k, dir, objects)
}

function applyTransforms(k: Kustomization, dir: string, input: K8sObject[]): K8sObject[] {
  let objects = input
  for (const p of k.patches ?? []) objects = applyPatch(p, dir, objects)
  for (const img of k.images ?? []) for (const o of objects) setImages(o, img)
  return objects
}

/** ConfigMaps from files, as kustomize's configMapGenerator writes them (the name hash is not reproduced). */
function generateConfigMaps(k: Kustomization, dir: string): K8sObject[] {
  return (k.configMapGenerator ?? []).map((g) => {
    for (const key of Object.keys(g)) {
      if (!GENERATOR_KEYS.has(key)) throw new Error(`${dir}: configMapGenerator "${key}" is not supported by the test renderer`)
    }
    for (const key of Object.keys(g.options ?? {})) {
      if (!GENERATOR_OPTIONS.has(key)) throw new Error(`${dir}: configMapGenerator option "${key}" is not supported by the test renderer`)
    }
    if (g.options?.disableNameSuffixHash !== true) throw new Error(`${dir}: ${g.name}: only disableNameSuffixHash: true is supported by the test renderer`)
    const data: Record<string, string> = {}
    for (const f of g.files ?? []) {
      const eq = f.indexOf('=')
      const key = eq < 0 ? f.slice(f.lastIndexOf('/') + 1) : f.slice(0, eq)
      data[key] = readFileSync(resolve(dir, eq < 0 ? f : f.slice(eq + 1)), 'utf8')
    }
    const metadata: K8sObject['metadata'] = { name: g.name }
    if (g.namespace !== undefined) metadata.namespace = g.namespace
    if (g.options?.labels !== undefined) metadata.labels = { ...g.options.labels }
    if (g.options?.annotations !== undefined) metadata.annotations = { ...g.options.annotations }
    return { apiVersion: 'v1', kind: 'ConfigMap', metadata, data }
  })
}

function checkUnique(objects: K8sObject[], dir: string): void {
  const seen = new Set<string>()
  for (const o of objects) {
    const id = idOf(o)
    if (seen.has(id)) throw new Error(`${dir}: ${id} is defined twice`)
    seen.add(id)
  }
}

export function matches(o: K8sObject, t: Target): boolean {
  for (const key of Object.keys(t)) {
    if (!TARGET_KEYS.has(key)) throw new Error(`patch target field "${key}" is not supported by the test renderer`)
  }
  if (t.group !== undefined && groupOf(o.apiVersion) !== t.group) return false
  if (t.version !== undefined && versionOf(o.apiVersion) !== t.version) return false
  if (t.kind !== undefined && o.kind !== t.kind) return false
  if (t.name !== undefined && o.metadata.name !== t.name) return false
  if (t.namespace !== undefined && (o.metadata.namespace ?? '') !== t.namespace) return false
  return true
}

function applyPatch(p: Patch, dir: string, objects: K8sObject[]): K8sObject[] {
  const text = p.path !== undefined ? readFileSync(resolve(dir, p.path), 'utf8') : p.patch
  if (text === undefined) throw new Error(`${dir}: a patch needs path or patch`)
  const body: unknown = parse(text)
  if (Array.isArray(body)) {
    if (p.target === undefined) throw new Error(`${dir}: a JSON 6902 patch needs a target`)
    const target = p.target
    const hits = objects.filter((o) => matches(o, target))
    if (hits.length === 0) throw new Error(`${dir}: patch target ${JSON.stringify(target)} matches nothing`)
    return objects.map((o) => (hits.includes(o) ? (applyJson6902(o, body) as K8sObject) : o))
  }
  if (isObject(body) && body['$patch'] === 'delete') {
    const meta = body['metadata']
    if (!isObject(meta) || typeof body['apiVersion'] !== 'string' || typeof body['kind'] !== 'string') {
      throw new Error(`${dir}: a delete patch needs apiVersion, kind and metadata`)
    }
    const id = idOf(body as unknown as K8sObject)
    const kept = objects.filter((o) => idOf(o) !== id)
    if (kept.length === objects.length) throw new Error(`${dir}: delete patch ${id} matches nothing`)
    return kept
  }
  throw new Error(`${dir}: only JSON 6902 patches and "$patch: delete" are supported by the test renderer`)
}

function decodePointer(path: string): string[] {
  if (path === '') return []
  if (!path.startsWith('/')) throw new Error(`bad JSON pointer ${path}`)
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
}

function clone<T>(v: T): T {
  return structuredClone(v)
}

function arrayIndex(arr: unknown[], key: string, forAdd: boolean): number {
  if (forAdd && key === '-') return arr.length
  if (!/^(0|[1-9][0-9]*)$/.test(key)) throw new Error(`bad array index ${key}`)
  const i = Number(key)
  if (i > arr.length || (!forAdd && i === arr.length)) throw new Error(`array index ${key} out of range`)
  return i
}

function child(parent: unknown, key: string, path: string): unknown {
  if (Array.isArray(parent)) return parent[arrayIndex(parent, key, false)]
  if (isObject(parent)) {
    if (!(key in parent)) throw new Error(`path ${path} does not exist`)
    return parent[key]
  }
  throw new Error(`path ${path} does not exist`)
}

export function applyJson6902(doc: unknown, ops: unknown[]): unknown {
  let root = clone(doc)
  for (const raw of ops) {
    if (!isObject(raw) || typeof raw['op'] !== 'string' || typeof raw['path'] !== 'string') {
      throw new Error(`bad JSON 6902 operation ${JSON.stringify(raw)}`)
    }
    const op = raw['op']
    const path = raw['path']
    const keys = decodePointer(path)
    if (op === 'test') {
      let v: unknown = root
      for (const k of keys) v = child(v, k, path)
      if (JSON.stringify(v) !== JSON.stringify(raw['value'])) {
        throw new Error(`test failed at ${path}: ${JSON.stringify(v)} != ${JSON.stringify(raw['value'])}`)
      }
      continue
    }
    if (op !== 'add' && op !== 'remove' && op !== 'replace') throw new Error(`op ${op} is not supported by the test renderer`)
    if (keys.length === 0) {
      if (op === 'remove') throw new Error('cannot remove the document')
      root = clone(raw['value'])
      continue
    }
    let parent: unknown = root
    for (const k of keys.slice(0, -1)) parent = child(parent, k, path)
    const last = keys[keys.length - 1] as string
    if (Array.isArray(parent)) {
      const i = arrayIndex(parent, last, op === 'add')
      if (op === 'add') parent.splice(i, 0, clone(raw['value']))
      else if (op === 'remove') parent.splice(i, 1)
      else parent[i] = clone(raw['value'])
    } else if (isObject(parent)) {
      if (op !== 'add' && !(last in parent)) throw new Error(`path ${path} does not exist`)
      if (op === 'remove') delete parent[last]
      else parent[last] = clone(raw['value'])
    } else {
      throw new Error(`path ${path} does not exist`)
    }
  }
  return root
}

/** Splits `repo[:tag][@digest]` the way kustomize's image transformer does. */
export function splitImage(image: string): { name: string; tag?: string; digest?: string } {
  let rest = image
  let digest: string | undefined
  const at = rest.indexOf('@')
  if (at >= 0) {
    digest = rest.slice(at + 1)
    rest = rest.slice(0, at)
  }
  const colon = rest.lastIndexOf(':')
  if (colon > rest.lastIndexOf('/')) {
    return { name: rest.slice(0, colon), tag: rest.slice(colon + 1), ...(digest ? { digest } : {}) }
  }
  return { name: rest, ...(digest ? { digest } : {}) }
}

function setImages(node: unknown, img: ImageSetting): void {
  if (Array.isArray(node)) {
    for (const v of node) setImages(v, img)
    return
  }
  if (!isObject(node)) return
  for (const [key, value] of Object.entries(node)) {
    if ((key === 'containers' || key === 'initContainers') && Array.isArray(value)) {
      for (const c of value) {
        if (!isObject(c) || typeof c['image'] !== 'string') continue
        const cur = splitImage(c['image'])
        if (cur.name !== img.name) continue
        const name = img.newName ?? cur.name
        if (img.digest !== undefined) c['image'] = `${name}@${img.digest}`
        else if (img.newTag !== undefined) c['image'] = `${name}:${img.newTag}`
        else c['image'] = `${name}${cur.tag !== undefined ? `:${cur.tag}` : ''}${cur.digest !== undefined ? `@${cur.digest}` : ''}`
      }
    } else {
      setImages(value, img)
    }
  }
}
