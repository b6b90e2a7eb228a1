import { isDeepStrictEqual } from 'node:util'
import { toNodeImages } from '../inventory/convert.js'
import { DEFAULT_AGENT_SERVICE_ACCOUNT, GROUP, NODE_IMAGE_SET_KIND, type ServiceAccountRef } from '../api/types.js'
import { baseRecord, invalidRecord, type ReviewRecord } from './pod-check.js'
import {
  allowed,
  denied,
  errored,
  parseReview,
  toReview,
  type AdmissionRequest,
  type AdmissionResponse,
  type AdmissionReviewReply,
} from './review.js'
import { field } from '../util/guards.js'

// Who may write a NodeImageSet. The webhook believes these objects: a forged one makes it
// deny pods that would run (forged absence) or let through pods that will not (forged
// presence). RBAC cannot pin each agent to its own node (every agent shares one
// ServiceAccount), so this check does: the agent of node X may write NodeImageSet X only.

/**
 * Set by the apiserver in a service account's user info when its token is bound to a pod
 * on a node (1.30+, ServiceAccountTokenPodNodeInfo; k8s.io/apiserver
 * pkg/authentication/serviceaccount NodeNameKey). Absent on older clusters.
 */
export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name'

/** Cluster admins: may write any NodeImageSet, e.g. to repair one by hand. */
export const DEFAULT_ADMIN_GROUPS: readonly string[] = ['system:masters']

export interface NodeImageSetPolicy {
  agentServiceAccount: ServiceAccountRef
  adminGroups: readonly string[]
}

export const DEFAULT_NODE_IMAGE_SET_POLICY: NodeImageSetPolicy = {
  agentServiceAccount: DEFAULT_AGENT_SERVICE_ACCOUNT,
  adminGroups: DEFAULT_ADMIN_GROUPS,
}

export function serviceAccountUsername(sa: ServiceAccountRef): string {
  return `system:serviceaccount:${sa.namespace}:${sa.name}`
}

/**
 * Why a write was allowed or denied; the `reason` label of
 * `neverpull_nodeimageset_reviews_total`.
 * - `agent-own-node`: the agent, its token bound to this very node.
 * - `agent-unbound`: the agent, with a token that names no node (before 1.30): allowed for
 *   any node, the weaker guarantee SECURITY.md describes.
 * - `admin`: a member of an admin group.
 * - `metadata-only`: an UPDATE that leaves spec and status alone (the garbage collector
 *   orphaning or finalizing, a label): nothing the webhook reads changes.
 * - `not-checked`: not a NodeImageSet CREATE/UPDATE; this route does not judge it.
 * - `other-node`: the agent of another node.
 * - `not-allowed`: neither the agent nor an admin.
 * - `malformed`: the object breaks the rules the inventory reader applies.
 * - `invalid-review`: the AdmissionReview itself is malformed.
 */
export type NodeImageSetReason =
  | 'agent-own-node'
  | 'agent-unbound'
  | 'admin'
  | 'metadata-only'
  | 'not-checked'
  | 'other-node'
  | 'not-allowed'
  | 'malformed'
  | 'invalid-review'

export interface NodeImageSetRecord extends ReviewRecord {
  reason: NodeImageSetReason
  /** The writer's node as its token names it, when the apiserver says. */
  writerNode?: string
}

export interface NodeImageSetHandled {
  reply: AdmissionReviewReply
  record: NodeImageSetRecord
}

function stringField(obj: unknown, key: string): string | undefined {
  const v = field(obj, key)
  return typeof v === 'string' ? v : undefined
}

function quoted(text: string, max = 253): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text)
}

/** The object's problems as the inventory reader would see them (the one schema, src/api/nodeimageset-schema.ts), or undefined. */
function objectProblem(object: unknown): string | undefined {
  const converted = toNodeImages(object)
  if (!converted.ok) {
    const prefix = 'malformed NodeImageSet: '
    if (converted.error.startsWith(prefix)) return `malformed: ${converted.error.slice(prefix.length)}`
    // The one rule past the schema: named after its node.
    const specNode = stringField(field(object, 'spec'), 'nodeName') ?? ''
    return `malformed: spec.nodeName is ${quoted(specNode)}, but a NodeImageSet must be named after its node`
  }
  const observed = stringField(field(object, 'status'), 'observedTime')
  if (observed !== undefined && Number.isNaN(Date.parse(observed))) {
    return `malformed: status.observedTime ${quoted(observed, 64)} is not an RFC 3339 time`
  }
  return undefined
}

function whoMayWrite(policy: NodeImageSetPolicy): string {
  const agent = `the neverpull-guard agent (${serviceAccountUsername(policy.agentServiceAccount)}), each for its own node`
  if (policy.adminGroups.length === 0) return `only ${agent}`
  return `only ${agent}, and members of ${policy.adminGroups.join(', ')}`
}

const HINT =
  'NodeImageSets record which images each node holds; the agent on that node rewrites its own within seconds. ' +
  'To change what a node reports, load or remove the image on the node; to drop a stale set, kubectl delete nodeimageset NAME.'

/**
 * One NodeImageSet AdmissionReview in, one out. Pure and total: never throws, reads no
 * clock. CREATE and UPDATE of `nodeimagesets` and `nodeimagesets/status` are judged;
 * anything else the route might receive is allowed untouched.
 */
export function guardNodeImageSetWrite(body: unknown, policy: NodeImageSetPolicy): NodeImageSetHandled {
  const parsed = parseReview(body)
  if (!parsed.ok) {
    return {
      reply: toReview(parsed.version, errored(parsed.uid, 400, parsed.error)),
      record: { ...invalidRecord(parsed.uid, parsed.error), reason: 'invalid-review' },
    }
  }
  const { request, apiVersion } = parsed.review
  const object = request.object
  const name = stringField(field(object, 'metadata'), 'name') || request.name || ''
  const subject = `NodeImageSet ${name || '(unnamed)'}`
  const user = request.userInfo?.username ?? ''
  const record: NodeImageSetRecord = { ...baseRecord(request), namespace: '', name, reason: 'not-checked' }
  const answer = (response: AdmissionResponse, reason: NodeImageSetReason): NodeImageSetHandled => {
    record.reason = reason
    record.decision = response.allowed ? 'allow' : 'deny'
    return { reply: toReview(apiVersion, response), record }
  }
  const deny = (reason: NodeImageSetReason, message: string): NodeImageSetHandled =>
    answer(denied(request.uid, message), reason)
  const malformed = (problem: string): NodeImageSetHandled => {
    record.error = problem
    return deny('malformed', `${subject} is ${problem}`)
  }

  if (!isJudged(request)) {
    return { reply: toReview(apiVersion, allowed(request.uid)), record }
  }

  if (
    request.operation === 'UPDATE' &&
    typeof object === 'object' &&
    object !== null &&
    isDeepStrictEqual(field(object, 'spec'), field(request.oldObject, 'spec')) &&
    isDeepStrictEqual(field(object, 'status'), field(request.oldObject, 'status'))
  ) {
    return answer(allowed(request.uid), 'metadata-only')
  }

  const groups = request.userInfo?.groups ?? []
  const admin = policy.adminGroups.find((g) => groups.includes(g))
  const isAgent = user === serviceAccountUsername(policy.agentServiceAccount)

  if (!isAgent && admin === undefined) {
    const who = user === '' ? 'an anonymous request' : `user ${quoted(user)}`
    return deny('not-allowed', `${subject}: ${who} may not write NodeImageSets; ${whoMayWrite(policy)} may.\n${HINT}`)
  }

  if (isAgent && admin === undefined) {
    const nodes = (request.userInfo?.extra?.[NODE_NAME_EXTRA] ?? []).filter((n) => n !== '')
    const writerNode = nodes[0]
    if (writerNode !== undefined) {
      record.writerNode = writerNode
      const specNode = stringField(field(object, 'spec'), 'nodeName')
      let target: string | undefined
      if (writerNode !== name) target = name
      else if (specNode !== undefined && specNode !== writerNode) target = specNode
      if (target !== undefined || nodes.some((n) => n !== writerNode)) {
        return deny(
          'other-node',
          `${subject}: the neverpull-guard agent on node ${quoted(nodes.join(', '))} may not write the image list of node ${quoted(target ?? name)}; ` +
            `each agent writes only the NodeImageSet of its own node.`,
        )
      }
    }
    const problem = objectProblem(object)
    if (problem !== undefined) return malformed(problem)
    return answer(allowed(request.uid), writerNode === undefined ? 'agent-unbound' : 'agent-own-node')
  }

  const problem = objectProblem(object)
  if (problem !== undefined) return malformed(problem)
  return answer(allowed(request.uid), 'admin')
}

function isJudged(request: AdmissionRequest): boolean {
  return (
    (request.operation === 'CREATE' || request.operation === 'UPDATE') &&
    request.kind.kind === NODE_IMAGE_SET_KIND &&
    request.kind.group === GROUP &&
    (request.subResource === undefined || request.subResource === '' || request.subResource === 'status')
  )
}
