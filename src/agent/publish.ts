import type { KubeConfig } from '@kubernetes/client-node'
import { applyObject, getObject } from '../kube/api.js'
import { ApiStatusError } from '../kube/status.js'
import { kubeConfigHttp, type KubeHttp } from '../kube/http.js'
import { GROUP, NODE_IMAGE_SET_KIND, NODE_IMAGE_SET_PLURAL, VERSION, type NodeImageSet } from '../api/types.js'
import { errorMessage, field, type JsonObject } from '../util/guards.js'

export const FIELD_MANAGER = 'neverpull-guard-agent'
/**
 * Server-side apply deletes a field its manager applied before and omits now. A status
 * without observedTime (the runtime was down since the agent started) goes out under a
 * second manager, so the last observation another run of the agent recorded survives.
 */
export const CONDITIONS_FIELD_MANAGER = 'neverpull-guard-agent-conditions'
export const DEFAULT_API_TIMEOUT_MS = 10_000

export type NodeImageSetStatus = NonNullable<NodeImageSet['status']>

/** Where the agent writes its NodeImageSet; the Kubernetes one is below, tests fake it. */
export interface Publisher {
  /** Server-side applies metadata (with the Node owner reference) and spec; creates the object if needed. */
  apply(set: NodeImageSet): Promise<void>
  /** Server-side applies the status subresource of an existing NodeImageSet. */
  applyStatus(name: string, status: NodeImageSetStatus): Promise<void>
}

export class PublishError extends Error {
  override readonly name = 'PublishError'
  constructor(
    message: string,
    /** HTTP status from the apiserver; undefined when it was not reached. */
    readonly statusCode?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/** The body of a spec apply: only the fields this field manager owns. */
export function applyBody(set: NodeImageSet, owner: { name: string; uid: string }): NodeImageSet {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: NODE_IMAGE_SET_KIND,
    metadata: {
      name: set.metadata.name,
      ...(set.metadata.labels ? { labels: set.metadata.labels } : {}),
      // The Node owns its NodeImageSet: the garbage collector deletes it with the node.
      ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: owner.name, uid: owner.uid }],
    },
    spec: set.spec,
  }
}

export function statusBody(name: string, status: NodeImageSetStatus): Omit<NodeImageSet, 'spec'> {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: NODE_IMAGE_SET_KIND,
    metadata: { name },
    status,
  }
}

/** A refusal in the apiserver's own words (a Status object's message) when there are any. */
function failure(what: string, err: ApiStatusError): PublishError {
  const said = err.status?.message ?? err.status?.text ?? (err.code === 401 ? 'Unauthorized' : `HTTP ${err.code}`)
  return new PublishError(`${what}: ${said} (HTTP ${err.code})`, err.code, { cause: err })
}

/** A refusal as a PublishError with its status; anything else as not reaching the apiserver. */
function publishError(what: string, err: unknown): PublishError {
  if (err instanceof ApiStatusError) return failure(what, err)
  return new PublishError(`${what}: ${errorMessage(err)}`, undefined, { cause: err })
}

export interface KubePublisherOptions {
  /** Node whose uid goes into the owner reference; read once, on the first apply. */
  nodeName: string
  /** Per-request timeout, ms. */
  timeoutMs?: number
}

/**
 * Publisher over the access layer (src/kube/api.ts): GET the Node (for the owner reference),
 * and server-side apply of the object and its status.
 */
export function createHttpPublisher(http: KubeHttp, options: KubePublisherOptions): Publisher {
  const timeoutMs = options.timeoutMs ?? DEFAULT_API_TIMEOUT_MS
  const collection = `/apis/${GROUP}/${VERSION}/${NODE_IMAGE_SET_PLURAL}`
  let nodeUid: string | undefined

  async function ownerUid(): Promise<string> {
    if (nodeUid) return nodeUid
    const what = `reading node "${options.nodeName}"`
    let node: JsonObject
    try {
      node = await getObject(http, `/api/v1/nodes/${encodeURIComponent(options.nodeName)}`, { timeoutMs })
    } catch (err) {
      if (err instanceof ApiStatusError && err.code === 404) {
        throw new PublishError(
          `node "${options.nodeName}" not found: set --node-name or NODE_NAME to this node's name (downward API spec.nodeName)`,
          404,
          { cause: err },
        )
      }
      throw publishError(what, err)
    }
    const uid = field(node['metadata'], 'uid')
    if (typeof uid !== 'string' || uid === '') throw new PublishError(`node "${options.nodeName}" has no metadata.uid`)
    nodeUid = uid
    return uid
  }

  async function apply(what: string, path: string, manager: string, body: unknown): Promise<void> {
    try {
      await applyObject(http, path, body, manager, { timeoutMs })
    } catch (err) {
      throw publishError(what, err)
    }
  }

  return {
    async apply(set) {
      const uid = await ownerUid()
      const name = set.metadata.name
      await apply(
        `applying NodeImageSet "${name}"`,
        `${collection}/${encodeURIComponent(name)}`,
        FIELD_MANAGER,
        applyBody(set, { name: options.nodeName, uid }),
      )
    },
    async applyStatus(name, status) {
      const manager = status.observedTime === undefined ? CONDITIONS_FIELD_MANAGER : FIELD_MANAGER
      await apply(
        `applying NodeImageSet "${name}" status`,
        `${collection}/${encodeURIComponent(name)}/status`,
        manager,
        statusBody(name, status),
      )
    },
  }
}

/** The publisher with a kubeconfig's cluster and credentials (development, tests). */
export function createKubePublisher(kc: KubeConfig, options: KubePublisherOptions): Publisher {
  return createHttpPublisher(kubeConfigHttp(kc), options)
}
