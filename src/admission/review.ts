import { Ajv, type ValidateFunction } from 'ajv'
import { field } from '../util/guards.js'

// The AdmissionReview envelope (admission.k8s.io/v1, and v1beta1 answered in kind). The
// apiserver treats anything but an HTTP 200 AdmissionReview with the request's uid as
// "failed calling webhook", so every parseable request gets one, even a malformed one.

export const V1 = 'admission.k8s.io/v1'
export const V1BETA1 = 'admission.k8s.io/v1beta1'
export type ReviewVersion = typeof V1 | typeof V1BETA1

export interface GroupVersionKind {
  group: string
  version: string
  kind: string
}

export interface AdmissionRequest {
  uid: string
  kind: GroupVersionKind
  resource: { group: string; version: string; resource: string }
  subResource?: string
  name?: string
  namespace?: string
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT'
  userInfo?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> }
  object?: unknown
  oldObject?: unknown
  dryRun?: boolean
}

export interface AdmissionReview {
  apiVersion: ReviewVersion
  kind: 'AdmissionReview'
  request: AdmissionRequest
}

export interface Status {
  code: number
  reason?: string
  message: string
}

export interface AdmissionResponse {
  uid: string
  allowed: boolean
  status?: Status
  warnings?: string[]
  /** Mutating webhooks only: base64 of a JSON array of RFC 6902 operations. */
  patch?: string
  patchType?: 'JSONPatch'
}

export interface AdmissionReviewReply {
  apiVersion: ReviewVersion
  kind: 'AdmissionReview'
  response: AdmissionResponse
}

const gvk = {
  type: 'object',
  // The apiserver always sends the group ('' for core); without it a kind means nothing.
  required: ['group', 'kind'],
  properties: { group: { type: 'string' }, version: { type: 'string' }, kind: { type: 'string' } },
} as const

const schema = {
  type: 'object',
  required: ['apiVersion', 'kind', 'request'],
  properties: {
    apiVersion: { enum: [V1, V1BETA1] },
    kind: { const: 'AdmissionReview' },
    request: {
      type: 'object',
      required: ['uid', 'kind', 'operation'],
      properties: {
        uid: { type: 'string', minLength: 1, maxLength: 128 },
        kind: gvk,
        resource: {
          type: 'object',
          properties: { group: { type: 'string' }, version: { type: 'string' }, resource: { type: 'string' } },
        },
        subResource: { type: 'string' },
        name: { type: 'string' },
        namespace: { type: 'string' },
        operation: { enum: ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] },
        userInfo: {
          type: 'object',
          properties: {
            username: { type: 'string' },
            uid: { type: 'string' },
            groups: { type: 'array', items: { type: 'string' } },
            extra: { type: 'object', additionalProperties: { type: 'array', items: { type: 'string' } } },
          },
        },
        dryRun: { type: 'boolean' },
      },
    },
  },
} as const

const ajv = new Ajv({ allErrors: false, strict: false })
const validate: ValidateFunction = ajv.compile(schema)

export type Parsed =
  { ok: true; review: AdmissionReview } | { ok: false; version: ReviewVersion; uid: string; error: string }

/** The uid and version to answer a review with when it cannot be read (or its handler failed). */
export function envelopeOf(body: unknown): { uid: string; version: ReviewVersion } {
  const uid = field(field(body, 'request'), 'uid')
  return { uid: typeof uid === 'string' ? uid : '', version: field(body, 'apiVersion') === V1BETA1 ? V1BETA1 : V1 }
}

export function parseReview(body: unknown): Parsed {
  if (validate(body)) return { ok: true, review: body as AdmissionReview }
  const e = validate.errors?.[0]
  const where = e === undefined || e.instancePath === '' ? 'the body' : e.instancePath.slice(1).replaceAll('/', '.')
  const what =
    e?.keyword === 'enum' || e?.keyword === 'const'
      ? `must be one of ${JSON.stringify(e.params['allowedValues'] ?? e.params['allowedValue'])}`
      : (e?.message ?? 'is invalid')
  const { uid, version } = envelopeOf(body)
  return { ok: false, version, uid, error: `malformed AdmissionReview: ${where} ${what}` }
}

export function allowed(uid: string, warnings: string[] = []): AdmissionResponse {
  return warnings.length > 0 ? { uid, allowed: true, warnings } : { uid, allowed: true }
}

/** Allowed with a JSONPatch (mutating webhooks only). */
export function patched(uid: string, operations: readonly unknown[]): AdmissionResponse {
  return {
    uid,
    allowed: true,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(operations)).toString('base64'),
  }
}

export function denied(uid: string, message: string, warnings: string[] = []): AdmissionResponse {
  const response: AdmissionResponse = { uid, allowed: false, status: { code: 403, reason: 'Forbidden', message } }
  if (warnings.length > 0) response.warnings = warnings
  return response
}

export function errored(uid: string, code: number, message: string): AdmissionResponse {
  return { uid, allowed: false, status: { code, reason: code === 400 ? 'BadRequest' : 'InternalError', message } }
}

export function toReview(version: ReviewVersion, response: AdmissionResponse): AdmissionReviewReply {
  return { apiVersion: version, kind: 'AdmissionReview', response }
}

/** What every admission log line says of the request, whichever route answered it. */
export interface RequestFields {
  uid: string
  /** `Pod`, or `Pod/ephemeralcontainers` for a subresource. */
  kind: string
  namespace: string
  name: string
  operation: string
  user: string
  dryRun: boolean
}

export function requestFields(r: AdmissionRequest): RequestFields {
  return {
    uid: r.uid,
    kind: r.subResource ? `${r.kind.kind}/${r.subResource}` : r.kind.kind,
    namespace: r.namespace ?? '',
    name: r.name ?? '',
    operation: r.operation,
    user: r.userInfo?.username ?? '',
    dryRun: r.dryRun === true,
  }
}

/** A malformed review's: only the uid, when it had one. */
export function unreadRequestFields(uid: string): RequestFields {
  return { uid, kind: '', namespace: '', name: '', operation: '', user: '', dryRun: false }
}
