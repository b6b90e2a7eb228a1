import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  Observable,
  PatchStrategy,
  setHeaderMiddleware,
  type ConfigurationOptions,
  type KubeConfig,
  type ObservableMiddleware,
} from '@kubernetes/client-node'
import { GROUP, NODE_IMAGE_SET_KIND, NODE_IMAGE_SET_PLURAL, VERSION, type NodeImageSet } from '../inventory/types.js'

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

/** The apiserver's own words (a Status object's message) when there are any. */
function apiMessage(err: ApiException<unknown>): string {
  let body: unknown = err.body
  if (typeof body === 'string') {
    const text = body
    try {
      body = JSON.parse(text)
    } catch {
      return text.trim().slice(0, 300) || `HTTP ${err.code}`
    }
  }
  if (body && typeof body === 'object' && 'message' in body && typeof body.message === 'string') {
    return body.message
  }
  return err.code === 401 ? 'Unauthorized' : `HTTP ${err.code}`
}

function wrap(what: string, err: unknown): PublishError {
  if (err instanceof PublishError) return err
  if (err instanceof ApiException) {
    return new PublishError(`${what}: ${apiMessage(err)} (HTTP ${err.code})`, err.code, { cause: err })
  }
  const message = err instanceof Error ? err.message : String(err)
  return new PublishError(`${what}: ${message}`, undefined, { cause: err })
}

function timeoutMiddleware(ms: number): ObservableMiddleware {
  return {
    pre: (ctx) => {
      ctx.setSignal(AbortSignal.timeout(ms))
      return new Observable(Promise.resolve(ctx))
    },
    post: (res) => new Observable(Promise.resolve(res)),
  }
}

export interface KubePublisherOptions {
  /** Node whose uid goes into the owner reference; read once, on the first apply. */
  nodeName: string
  /** Per-request timeout, ms. */
  timeoutMs?: number
}

/**
 * Publisher over @kubernetes/client-node. The generated client only knows JSON patch types,
 * so a middleware rewrites Content-Type to apply-patch+yaml (a JSON body is valid YAML) and
 * gives every request a deadline, which the generated client otherwise lacks.
 */
export function createKubePublisher(kc: KubeConfig, options: KubePublisherOptions): Publisher {
  const timeoutMs = options.timeoutMs ?? DEFAULT_API_TIMEOUT_MS
  const custom = kc.makeApiClient(CustomObjectsApi)
  const core = kc.makeApiClient(CoreV1Api)
  const deadline = timeoutMiddleware(timeoutMs)
  const readOptions: ConfigurationOptions = { middleware: [deadline], middlewareMergeStrategy: 'append' }
  const applyOptions: ConfigurationOptions = {
    middleware: [deadline, setHeaderMiddleware('Content-Type', PatchStrategy.ServerSideApply)],
    middlewareMergeStrategy: 'append',
  }
  let nodeUid: string | undefined

  async function ownerUid(): Promise<string> {
    if (nodeUid) return nodeUid
    let uid: string | undefined
    try {
      uid = (await core.readNode({ name: options.nodeName }, readOptions)).metadata?.uid
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) {
        throw new PublishError(
          `node "${options.nodeName}" not found: set --node-name or NODE_NAME to this node's name (downward API spec.nodeName)`,
          404,
          { cause: err },
        )
      }
      throw wrap(`reading node "${options.nodeName}"`, err)
    }
    if (!uid) throw new PublishError(`node "${options.nodeName}" has no metadata.uid`)
    nodeUid = uid
    return uid
  }

  return {
    async apply(set) {
      const uid = await ownerUid()
      const name = set.metadata.name
      try {
        await custom.patchClusterCustomObject(
          {
            group: GROUP,
            version: VERSION,
            plural: NODE_IMAGE_SET_PLURAL,
            name,
            body: applyBody(set, { name: options.nodeName, uid }),
            fieldManager: FIELD_MANAGER,
            force: true,
          },
          applyOptions,
        )
      } catch (err) {
        throw wrap(`applying NodeImageSet "${name}"`, err)
      }
    },
    async applyStatus(name, status) {
      try {
        await custom.patchClusterCustomObjectStatus(
          {
            group: GROUP,
            version: VERSION,
            plural: NODE_IMAGE_SET_PLURAL,
            name,
            body: statusBody(name, status),
            fieldManager: status.observedTime === undefined ? CONDITIONS_FIELD_MANAGER : FIELD_MANAGER,
            force: true,
          },
          applyOptions,
        )
      } catch (err) {
        throw wrap(`applying NodeImageSet "${name}" status`, err)
      }
    },
  }
}
