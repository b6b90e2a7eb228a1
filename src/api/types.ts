// The shapes every part of neverpull-guard agrees on: the NodeImageSet custom resource
// (what the agent publishes), the Node facts the webhook needs, and the read side of the
// inventory that the decision engine consumes.

// The wire types of NodeImageSet, generated from the one schema (nodeimageset-schema.ts).
import type {
  NodeImageSetImageElsewhere,
  NodeImageSetImageFilesystem,
  NodeImageSetSpec,
  NodeImageSetStatus,
} from './nodeimageset.generated.js'
export type {
  NodeImageSetCondition,
  NodeImageSetImage,
  NodeImageSetImageElsewhere,
  NodeImageSetImageFilesystem,
  NodeImageSetRuntime,
  NodeImageSetSpec,
  NodeImageSetStatus,
} from './nodeimageset.generated.js'
import type { PullableRegistries } from './registries.js'

export const GROUP = 'neverpull.dev'
export const VERSION = 'v1alpha1'
export const NODE_IMAGE_SET_KIND = 'NodeImageSet'
export const NODE_IMAGE_SET_PLURAL = 'nodeimagesets'
export const MODE_LABEL = 'neverpull.dev/mode'
/** Namespace label: `true` opts the namespace into steering, `false` out of a global `--steer`. */
export const STEER_LABEL = 'neverpull.dev/steer'
/** `--steer-max-nodes` when absent: a pod spec of 100 one-node affinity terms stays a few KiB. */
export const DEFAULT_STEER_MAX_NODES = 100
/** Pod annotation set by the mutating webhook: `<k> of <n> eligible nodes`. */
export const STEERED_ANNOTATION = 'neverpull.dev/steered'

/** One image as the container runtime lists it over CRI (runtime.v1.Image), normalised: every field present. */
export interface RuntimeImage {
  /** Image ID, e.g. `sha256:4d1f...` (containerd: the config digest). */
  id: string
  /** Normalised tag references, e.g. `docker.io/library/nginx:1.27`. */
  repoTags: string[]
  /** Normalised digest references, e.g. `docker.io/library/nginx@sha256:...`. */
  repoDigests: string[]
  /** Bytes, as the runtime reports them. */
  size: number
  pinned: boolean
}

export interface RuntimeInfo {
  /** `containerd`, `cri-o`, `docker` ... (RuntimeService/Version runtime_name). */
  name: string
  version: string
  /** The CRI endpoint the agent used, e.g. `unix:///run/containerd/containerd.sock`. */
  endpoint: string
  /** CRI-O: registries a short name is tried in, in order; undefined when not known. */
  unqualifiedSearchRegistries?: string[]
  /** CRI-O: short name -> fully qualified repository. */
  shortNameAliases?: Record<string, string>
}

/** The NodeImageSet custom resource, cluster-scoped, named after its node. */
export interface NodeImageSet {
  apiVersion: `${typeof GROUP}/${typeof VERSION}`
  kind: typeof NODE_IMAGE_SET_KIND
  metadata: {
    name: string
    resourceVersion?: string
    uid?: string
    creationTimestamp?: string
    ownerReferences?: Array<{
      apiVersion: string
      kind: string
      name: string
      uid: string
      controller?: boolean
      blockOwnerDeletion?: boolean
    }>
    labels?: Record<string, string>
  }
  spec: NodeImageSetSpec
  status?: NodeImageSetStatus
}

export type TaintEffect = 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute'

export interface Taint {
  key: string
  value?: string
  effect: TaintEffect
}

export interface Toleration {
  key?: string
  /** `Lt` and `Gt` only where the cluster serves TaintTolerationComparisonOperators (1.35+). */
  operator?: 'Exists' | 'Equal' | 'Lt' | 'Gt'
  value?: string
  effect?: TaintEffect | ''
  tolerationSeconds?: number
}

/** What the webhook keeps of a Node object. */
export interface NodeFacts {
  name: string
  labels: Record<string, string>
  taints: Taint[]
  unschedulable: boolean
  /** Ready condition: true, false, or undefined when not reported. */
  ready: boolean | undefined
  /**
   * `status.images[].names` flattened (repo digests and tags as the kubelet reports them,
   * at most 50 images). Presence there proves presence; absence proves nothing.
   */
  statusImageNames: string[]
}

/** What the webhook keeps of a NodeImageSet. */
export interface NodeImages {
  nodeName: string
  runtime?: RuntimeInfo
  images: RuntimeImage[]
  /** ms since epoch of status.observedTime; NaN when never observed. */
  observedAt: number
  /** Images the node holds where the kubelet does not look (spec.imagesElsewhere). */
  elsewhere?: NodeImageSetImageElsewhere[]
  /** status.imageFilesystem, when the agent could read it. */
  imageFilesystem?: NodeImageSetImageFilesystem
}

export type Mode = 'enforce' | 'warn' | 'audit' | 'off'

/** The service account the agent runs as: the only writer of NodeImageSets. */
export interface ServiceAccountRef {
  namespace: string
  name: string
}

export const DEFAULT_AGENT_SERVICE_ACCOUNT: ServiceAccountRef = {
  namespace: 'neverpull-system',
  name: 'neverpull-guard-agent',
}

/**
 * The write side of the inventory. The static file loader and the cluster informers both
 * feed one of these; the index behind it answers the decision engine's questions.
 * Every call is incremental: one node, one image set, one namespace at a time.
 */
/**
 * What the webhook keeps of a RuntimeClass (node.k8s.io v1, v1beta1 on 1.19): the scheduling
 * the RuntimeClass admission plugin merges into every Pod that names it.
 */
export interface RuntimeClassFacts {
  name: string
  handler: string
  /** scheduling.nodeSelector; undefined when absent. */
  nodeSelector?: Record<string, string>
  /** scheduling.tolerations. */
  tolerations: Toleration[]
}

export interface InventorySink {
  upsertNode(node: NodeFacts): void
  removeNode(name: string): void
  upsertImages(images: NodeImages): void
  removeImages(nodeName: string): void
  /** `undefined` clears the namespace's mode (the global mode applies). */
  setNamespaceMode(namespace: string, mode: Mode | undefined): void
  /**
   * The namespace's `neverpull.dev/pullable-registries` annotation, parsed; `undefined`
   * clears it (the webhook's --pullable-registries applies).
   */
  setNamespacePullableRegistries(namespace: string, registries: PullableRegistries | undefined): void
  /** The namespace's `neverpull.dev/steer` label; `undefined` when absent (the global `--steer` applies). */
  setNamespaceSteer(namespace: string, steer: boolean | undefined): void
  /** The namespace exists (a list or watch event named it), or is gone (`false`). */
  setNamespaceSeen(namespace: string, seen: boolean): void
  /**
   * Whether the namespaces seen are all the cluster had when the Namespace list synced, so
   * that one not seen is newer than the inventory (its labels not known yet); false while
   * they are unknown, and for file inventories, which need not list them all.
   */
  setNamespacesComplete(complete: boolean): void
  upsertRuntimeClass(runtimeClass: RuntimeClassFacts): void
  removeRuntimeClass(name: string): void
  /**
   * Whether the RuntimeClasses held are all the cluster has (its list synced), so that a name
   * not among them does not exist; false while they are unknown.
   */
  setRuntimeClassesComplete(complete: boolean): void
}
