import type { Toleration } from '../api/types.js'
import { daemonSetTolerations, readToleration, type NodeSelectorTerm, type Placement } from '../api/scheduling.js'
import { isObject, type JsonObject } from '../util/guards.js'

// Where the pod spec lives in each object that carries one (KUBERNETES-FACTS §3), and the
// facts the decision needs from it. The apiserver has validated and defaulted the object
// before any validating webhook sees it, but the webhook must not trust a non-apiserver
// caller: every field read here is type-checked, and a wrong type is an error, not a crash.

/**
 * `imageVolume`: a `spec.volumes[].image` volume (ImageVolume: alpha 1.31, beta 1.33, on by
 * default 1.35). The kubelet pulls its `reference` by its `pullPolicy`, defaulted like a
 * container's (pkg/apis/core/v1 defaults.go SetDefaults_ImageVolumeSource), so `Never`
 * needs the image on the node exactly as a container does. `name` is the volume's name.
 */
export type ContainerKind = 'container' | 'initContainer' | 'ephemeralContainer' | 'imageVolume'

export interface ContainerFacts {
  kind: ContainerKind
  name: string
  image: string
  pullPolicy: string
}

/**
 * Why an object creates no pod at admission (KUBERNETES-FACTS §9): `replicas: 0` (or a Job's
 * `parallelism: 0` or `completions: 0`), a suspended CronJob or Job, a paused Deployment, or a
 * core PodTemplate, which no controller acts on by itself. Its images matter later, when it
 * is scaled up, resumed or used.
 */
export type Idle = 'scaled-to-zero' | 'suspended' | 'paused' | 'template-only'

export interface PodTemplateFacts {
  /** The object's kind: Pod, Deployment, ... */
  kind: string
  /** Set when the object creates no pod now; undefined when it does (or may). */
  idle?: Idle
  /**
   * A DaemonSet or StatefulSet whose template changes reach no running pod by themselves:
   * `updateStrategy.type: OnDelete` (pods take the new template only when deleted), or a
   * StatefulSet partition at or above its replicas (pkg/controller/statefulset
   * updateStatefulSet: only ordinals >= partition are updated). An UPDATE of its template
   * then creates no pod now.
   */
  heldRollout?: 'on-delete' | 'partitioned'
  /** spec.runtimeClassName, read with the placement (only for templates with a checked container). */
  runtimeClassName?: string
  /** DaemonSet: the image must be on every eligible node, and the controller's tolerations apply. */
  perNode: boolean
  /** A static pod's mirror, created by the kubelet for a pod that already runs or fails. */
  mirror: boolean
  placement: Placement
  containers: ContainerFacts[]
}

export type Extracted = { ok: true; template: PodTemplateFacts | null } | { ok: false; error: string }

// A Map, not an object literal: a kind named `toString` or `__proto__` must find nothing.
const KINDS: ReadonlyMap<string, { group: string; path: readonly string[] }> = new Map([
  ['Pod', { group: '', path: ['spec'] }],
  ['PodTemplate', { group: '', path: ['template', 'spec'] }],
  ['ReplicationController', { group: '', path: ['spec', 'template', 'spec'] }],
  ['Deployment', { group: 'apps', path: ['spec', 'template', 'spec'] }],
  ['ReplicaSet', { group: 'apps', path: ['spec', 'template', 'spec'] }],
  ['StatefulSet', { group: 'apps', path: ['spec', 'template', 'spec'] }],
  ['DaemonSet', { group: 'apps', path: ['spec', 'template', 'spec'] }],
  ['Job', { group: 'batch', path: ['spec', 'template', 'spec'] }],
  ['CronJob', { group: 'batch', path: ['spec', 'jobTemplate', 'spec', 'template', 'spec'] }],
])

/** `group` is '' for the core API group; an absent group is the core group too. */
export function carriesPodTemplate(group: string | undefined, kind: string): boolean {
  return KINDS.get(kind)?.group === (group ?? '')
}

export const POD_TEMPLATE_KINDS: readonly string[] = [...KINDS.keys()]

class ShapeError extends Error {}

function fail(path: string, what: string): never {
  throw new ShapeError(`${path} ${what}`)
}

function optionalString(obj: JsonObject, key: string, path: string): string | undefined {
  const v = obj[key]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') fail(`${path}.${key}`, 'must be a string')
  return v
}

function optionalArray(obj: JsonObject, key: string, path: string): unknown[] {
  const v = obj[key]
  if (v === undefined || v === null) return []
  if (!Array.isArray(v)) fail(`${path}.${key}`, 'must be an array')
  return v
}

function stringMap(v: unknown, path: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined
  if (!isObject(v)) fail(path, 'must be an object of strings')
  for (const key in v) if (typeof v[key] !== 'string') fail(`${path}.${key}`, 'must be a string')
  return v as Record<string, string>
}

function containers(spec: JsonObject, key: string, kind: ContainerKind, path: string, out: ContainerFacts[]): void {
  const list = optionalArray(spec, key, path)
  for (let i = 0; i < list.length; i++) {
    const c = list[i]
    const at = `${path}.${key}[${i}]`
    if (!isObject(c)) fail(at, 'must be an object')
    out.push({
      kind,
      name: optionalString(c, 'name', at) ?? '',
      image: optionalString(c, 'image', at) ?? '',
      pullPolicy: optionalString(c, 'imagePullPolicy', at) ?? '',
    })
  }
}

/** `spec.volumes[].image{reference, pullPolicy}`, as the containers the decision checks. */
function imageVolumes(spec: JsonObject, path: string, out: ContainerFacts[]): void {
  const list = optionalArray(spec, 'volumes', path)
  for (let i = 0; i < list.length; i++) {
    const v = list[i]
    if (!isObject(v)) continue
    const image = v['image']
    if (image === undefined || image === null) continue
    const at = `${path}.volumes[${i}].image`
    if (!isObject(image)) fail(at, 'must be an object')
    out.push({
      kind: 'imageVolume',
      name: optionalString(v, 'name', `${path}.volumes[${i}]`) ?? '',
      image: optionalString(image, 'reference', at) ?? '',
      pullPolicy: optionalString(image, 'pullPolicy', at) ?? '',
    })
  }
}

function requirements(v: unknown, path: string): NodeSelectorTerm['matchExpressions'] {
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v)) fail(path, 'must be an array')
  return v.map((r, i) => {
    const at = `${path}[${i}]`
    if (!isObject(r)) fail(at, 'must be an object')
    const values = optionalArray(r, 'values', at)
    for (const value of values) if (typeof value !== 'string') fail(`${at}.values`, 'must be strings')
    return {
      key: optionalString(r, 'key', at) ?? '',
      operator: optionalString(r, 'operator', at) ?? '',
      values: values as string[],
    }
  })
}

function requiredTerms(spec: JsonObject, path: string): NodeSelectorTerm[] | undefined {
  const affinity = spec['affinity']
  if (!isObject(affinity)) return undefined
  const nodeAffinity = affinity['nodeAffinity']
  if (!isObject(nodeAffinity)) return undefined
  const required = nodeAffinity['requiredDuringSchedulingIgnoredDuringExecution']
  if (!isObject(required)) return undefined
  const at = `${path}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms`
  const terms = optionalArray(required, 'nodeSelectorTerms', at.slice(0, at.lastIndexOf('.')))
  return terms.map((t, i) => {
    if (!isObject(t)) fail(`${at}[${i}]`, 'must be an object')
    const term: NodeSelectorTerm = {}
    const expressions = requirements(t['matchExpressions'], `${at}[${i}].matchExpressions`)
    const fields = requirements(t['matchFields'], `${at}[${i}].matchFields`)
    if (expressions !== undefined) term.matchExpressions = expressions
    if (fields !== undefined) term.matchFields = fields
    return term
  })
}

function tolerations(spec: JsonObject, path: string): Toleration[] {
  const list = optionalArray(spec, 'tolerations', path)
  return list.map((t, i) => {
    const at = `${path}.tolerations[${i}]`
    if (!isObject(t)) fail(at, 'must be an object')
    return readToleration(t, at, fail)
  })
}

export interface ExtractOptions {
  /** Which containers the decision will check; default those with imagePullPolicy: Never. */
  checked?: (c: ContainerFacts) => boolean
}

const neverPolicy = (c: ContainerFacts): boolean => c.pullPolicy === 'Never'

const SCALABLE: ReadonlySet<string> = new Set(['Deployment', 'ReplicaSet', 'StatefulSet', 'ReplicationController'])

/**
 * Whether the object creates pods now. `replicas` is defaulted to 1 before any webhook runs,
 * so only an explicit 0 counts; a Job (batch/v1 JobSpec.suspend, 1.21+) or CronJob
 * (CronJobSpec.suspend) with `suspend: true` creates none until resumed; a Job with
 * `parallelism: 0` runs nothing, nor one with `completions: 0` (pkg/controller/job
 * manageJob: wantActive = completions - succeeded = 0, and the Job is complete at once);
 * a paused Deployment's template makes no ReplicaSet until it is resumed
 * (pkg/controller/deployment syncDeployment: Paused -> sync, which calls
 * getAllReplicaSetsAndSyncRevision with createIfNotExisted=false; scaling a paused
 * Deployment scales its existing ReplicaSets, whose templates are not this one unless it
 * was left unchanged); a core PodTemplate is only a template.
 */
function idleReason(kind: string, object: JsonObject): Idle | undefined {
  if (kind === 'PodTemplate') return 'template-only'
  const spec = object['spec']
  if (!isObject(spec)) return undefined
  if (SCALABLE.has(kind)) {
    if (spec['replicas'] === 0) return 'scaled-to-zero'
    return kind === 'Deployment' && spec['paused'] === true ? 'paused' : undefined
  }
  if (kind === 'CronJob') return spec['suspend'] === true ? 'suspended' : undefined
  if (kind === 'Job') {
    if (spec['suspend'] === true) return 'suspended'
    return spec['parallelism'] === 0 || spec['completions'] === 0 ? 'scaled-to-zero' : undefined
  }
  return undefined
}

/** See PodTemplateFacts.heldRollout. */
function heldRollout(kind: string, object: JsonObject): PodTemplateFacts['heldRollout'] {
  if (kind !== 'DaemonSet' && kind !== 'StatefulSet') return undefined
  const spec = object['spec']
  if (!isObject(spec)) return undefined
  const strategy = spec['updateStrategy']
  if (!isObject(strategy)) return undefined
  if (strategy['type'] === 'OnDelete') return 'on-delete'
  if (kind !== 'StatefulSet') return undefined
  const rolling = strategy['rollingUpdate']
  const partition = isObject(rolling) ? rolling['partition'] : undefined
  const replicas = typeof spec['replicas'] === 'number' ? spec['replicas'] : 1
  return typeof partition === 'number' && partition >= replicas ? 'partitioned' : undefined
}

/**
 * The pod template facts of an object of the given kind, `null` when the object carries no
 * pod spec (a ReplicationController with a null template), or an error naming the field.
 */
export function extractPodTemplate(kind: string, object: unknown, options: ExtractOptions = {}): Extracted {
  const shape = KINDS.get(kind)
  if (shape === undefined) return { ok: true, template: null }
  try {
    if (!isObject(object)) fail('object', 'must be an object')
    let spec: unknown = object
    let path = ''
    for (const step of shape.path) {
      path = path === '' ? step : `${path}.${step}`
      if (!isObject(spec)) return { ok: true, template: null }
      spec = spec[step]
    }
    if (spec === undefined || spec === null) return { ok: true, template: null }
    if (!isObject(spec)) fail(path, 'must be an object')

    const list: ContainerFacts[] = []
    containers(spec, 'initContainers', 'initContainer', path, list)
    containers(spec, 'containers', 'container', path, list)
    containers(spec, 'ephemeralContainers', 'ephemeralContainer', path, list)
    imageVolumes(spec, path, list)

    const perNode = kind === 'DaemonSet'
    const idle = idleReason(kind, object)
    const metadata = object['metadata']
    const annotations = isObject(metadata) ? metadata['annotations'] : undefined
    const mirror = kind === 'Pod' && isObject(annotations) && 'kubernetes.io/config.mirror' in annotations
    // Placement only matters for checked containers; most pods have none, and skipping it
    // keeps the common case (allowed untouched) cheap.
    if (!list.some(options.checked ?? neverPolicy)) {
      const template: PodTemplateFacts = { kind, perNode, mirror, placement: { tolerations: [] }, containers: list }
      if (idle !== undefined) template.idle = idle
      return { ok: true, template }
    }
    const placement: Placement = { tolerations: tolerations(spec, path) }
    if (perNode) {
      const hostNetwork = spec['hostNetwork'] === true
      placement.tolerations = placement.tolerations.concat(daemonSetTolerations(hostNetwork))
    }
    const nodeName = optionalString(spec, 'nodeName', path)
    if (nodeName !== undefined && nodeName !== '') {
      placement.nodeName = nodeName
      // The DaemonSet controller checks node affinity and taints even for a named node
      // (pkg/controller/daemon NodeShouldRunDaemonPod); only a Pod's nodeName bypasses them.
      if (perNode) placement.nodeNameFiltered = true
    }
    const selector = stringMap(spec['nodeSelector'], `${path}.nodeSelector`)
    if (selector !== undefined) placement.nodeSelector = selector
    const terms = requiredTerms(spec, path)
    if (terms !== undefined) placement.requiredTerms = terms
    const runtimeClassName = optionalString(spec, 'runtimeClassName', path)

    const template: PodTemplateFacts = { kind, perNode, mirror, placement, containers: list }
    if (idle !== undefined) template.idle = idle
    const held = heldRollout(kind, object)
    if (held !== undefined) template.heldRollout = held
    if (runtimeClassName !== undefined && runtimeClassName !== '') template.runtimeClassName = runtimeClassName
    return { ok: true, template }
  } catch (err) {
    if (err instanceof ShapeError) return { ok: false, error: err.message }
    throw err
  }
}
