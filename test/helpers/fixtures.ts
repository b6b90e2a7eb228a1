import { readFileSync } from 'node:fs'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'
import { loadInventoryText } from '../../src/inventory/file.js'

export const FIXTURES = new URL('../fixtures/admission/', import.meta.url)
export const EXAMPLE_INVENTORY = new URL('../../examples/inventory.yaml', import.meta.url)

/** A container of a fixture, as the tests read and edit it. */
export interface FixtureContainer {
  name: string
  image?: string
  imagePullPolicy?: string
  [field: string]: unknown
}

/** A pod spec of a fixture: the fields the tests read and edit; the rest stays unknown. Every fixture has a container. */
export interface FixturePodSpec {
  containers: [FixtureContainer, ...FixtureContainer[]]
  initContainers?: FixtureContainer[]
  ephemeralContainers?: FixtureContainer[]
  nodeName?: string
  nodeSelector?: Record<string, string>
  affinity?: {
    nodeAffinity?: {
      requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms: Array<Record<string, unknown>> }
      [field: string]: unknown
    }
    [field: string]: unknown
  } | null
  tolerations?: Array<Record<string, unknown>>
  volumes?: Array<Record<string, unknown>>
  runtimeClassName?: string
  [field: string]: unknown
}

/** Object metadata of a fixture. */
export interface FixtureMeta {
  name?: string
  generateName?: string
  namespace?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  ownerReferences?: Array<Record<string, unknown>>
  [field: string]: unknown
}

/** A Pod as the tests build and patch it. */
export interface FixturePod {
  apiVersion: string
  kind: string
  metadata: FixtureMeta
  spec: FixturePodSpec
  [field: string]: unknown
}

/**
 * The object of a fixture: a Pod (spec is a pod spec), a workload (spec.template, spec.jobTemplate)
 * or a PodTemplate (template); the test knows which fixture it loaded.
 */
export interface FixtureObject extends FixturePod {
  spec: FixturePodSpec & {
    template: { metadata?: Record<string, unknown>; spec: FixturePodSpec }
    jobTemplate: { spec: { template: { spec: FixturePodSpec } } }
    [field: string]: unknown
  }
  template: { metadata?: Record<string, unknown>; spec: FixturePodSpec }
  [field: string]: unknown
}

/** An AdmissionReview fixture; `object` is typed as the tests use it, whatever the kind. */
export interface FixtureReview<O = FixtureObject> {
  apiVersion: string
  kind: string
  request: {
    uid: string
    kind: { group: string; version: string; kind: string }
    resource: { group: string; version: string; resource: string }
    requestKind?: { group: string; version: string; kind: string }
    requestResource?: { group: string; version: string; resource: string }
    name?: string
    namespace?: string
    operation: string
    userInfo: {
      username?: string
      uid?: string
      groups?: string[]
      extra?: Record<string, string[]>
      [field: string]: unknown
    }
    object: O
    oldObject?: O | null
    dryRun?: boolean
    [field: string]: unknown
  }
}

/** A real AdmissionReview as the apiserver sent it, parsed fresh for each use. */
export function review(name: string): FixtureReview {
  return JSON.parse(readFileSync(new URL(`${name}.json`, FIXTURES), 'utf8')) as FixtureReview
}

/** A fixture's envelope around another object, e.g. the pod-create review turned into a NodeImageSet write. */
export function reviewWith<O>(name: string, object: O, oldObject: O | null = null): FixtureReview<O> {
  const { request, ...envelope } = review(name)
  return { ...envelope, request: { ...request, object, oldObject } }
}

/** A NodeImageSet as the tests write it. */
export interface FixtureNodeImageSet {
  apiVersion: string
  kind: string
  metadata: { name: string; annotations?: Record<string, string>; [field: string]: unknown }
  spec: {
    nodeName: string
    runtime?: { name: string; version?: string; endpoint?: string }
    images: Array<{ id: string; repoTags: string[]; repoDigests?: string[]; size?: number; pinned?: boolean }>
    [field: string]: unknown
  }
  status?: { observedTime?: string; imageCount?: number; [field: string]: unknown }
  [field: string]: unknown
}

export function exampleInventory(now: number): InventoryIndex {
  const index = new InventoryIndex({ staleAfterMs: 15 * 60_000 })
  loadInventoryText(readFileSync(EXAMPLE_INVENTORY, 'utf8'), 'examples/inventory.yaml', index, now)
  return index
}
