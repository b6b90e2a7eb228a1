import { loadKubeConfig } from '../kube/config.js'
import { getObject, jsonPatchObject } from '../kube/api.js'
import { kubeConfigHttp } from '../kube/http.js'
import { ApiStatusError } from '../kube/status.js'
import { errorMessage } from '../util/guards.js'

export interface JsonPatchOp {
  op: 'test' | 'add'
  path: string
  value: unknown
}

export interface LivePatchOptions {
  name: string
  caBundle: string
  /** Path to a kubeconfig; the usual $KUBECONFIG / ~/.kube/config / in-cluster lookup otherwise. */
  kubeconfig: string | undefined
}

/** What one live patch did: per configuration kind, the webhooks set, or why none were. */
export interface LivePatched {
  kind: 'ValidatingWebhookConfiguration' | 'MutatingWebhookConfiguration'
  /** Webhooks whose caBundle was set; 0 with `missing` when the configuration is not installed. */
  count: number
  missing?: boolean
}

export type PatchLive = (options: LivePatchOptions) => Promise<LivePatched[]>

/**
 * One `add` per webhook (add replaces an existing member), each guarded by a `test` of the
 * webhook's name so a configuration that was reordered since we read it fails the whole
 * patch instead of giving one webhook another's bundle.
 */
export function caBundlePatch(webhookNames: ReadonlyArray<string | undefined>, caBundle: string): JsonPatchOp[] {
  const ops: JsonPatchOp[] = []
  webhookNames.forEach((name, i) => {
    if (name !== undefined) ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: name })
    ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: caBundle })
  })
  return ops
}

/**
 * Sets caBundle on every webhook of the live ValidatingWebhookConfiguration NAME (which must
 * exist) and of the MutatingWebhookConfiguration NAME (steering) when it is installed.
 */
export const patchLiveWebhookConfig: PatchLive = async (options) => {
  const http = kubeConfigHttp(await loadKubeConfig(options.kubeconfig))
  const path = (plural: string): string =>
    `/apis/admissionregistration.k8s.io/v1/${plural}/${encodeURIComponent(options.name)}`
  const names = (config: Record<string, unknown>): Array<string | undefined> => {
    const webhooks = config['webhooks']
    if (!Array.isArray(webhooks)) return []
    return webhooks.map((w) => {
      const name = (w as { name?: unknown } | null)?.name
      return typeof name === 'string' ? name : undefined
    })
  }
  const results: LivePatched[] = []

  const kind = 'ValidatingWebhookConfiguration'
  const validating = path('validatingwebhookconfigurations')
  let webhooks: Array<string | undefined>
  try {
    webhooks = names(await getObject(http, validating))
  } catch (err) {
    throw describe(err, `reading ${kind} ${options.name}`)
  }
  if (webhooks.length === 0) throw new Error(`${kind} ${options.name} has no webhooks to patch`)
  try {
    await jsonPatchObject(http, validating, caBundlePatch(webhooks, options.caBundle), FIELD_MANAGER)
  } catch (err) {
    throw describe(err, `patching ${kind} ${options.name}`)
  }
  results.push({ kind, count: webhooks.length })

  const mutatingKind = 'MutatingWebhookConfiguration'
  const mutating = path('mutatingwebhookconfigurations')
  let steering: Array<string | undefined>
  try {
    steering = names(await getObject(http, mutating))
  } catch (err) {
    if (!(err instanceof ApiStatusError) || err.code !== 404)
      throw describe(err, `reading ${mutatingKind} ${options.name}`)
    results.push({ kind: mutatingKind, count: 0, missing: true })
    return results
  }
  if (steering.length > 0) {
    try {
      await jsonPatchObject(http, mutating, caBundlePatch(steering, options.caBundle), FIELD_MANAGER)
    } catch (err) {
      throw describe(err, `patching ${mutatingKind} ${options.name}`)
    }
  }
  results.push({ kind: mutatingKind, count: steering.length })
  return results
}

const FIELD_MANAGER = 'neverpull-guard-certs'

function describe(err: unknown, doing: string): Error {
  const code = err instanceof ApiStatusError ? err.code : undefined
  if (code === 404)
    return new Error(`${doing}: not found (is it installed? kubectl get validatingwebhookconfigurations)`)
  if (code === 401 || code === 403)
    return new Error(`${doing}: not allowed (HTTP ${code}); check the kubeconfig's user and RBAC`)
  if (code === 409 || code === 422)
    return new Error(`${doing}: the webhooks changed while patching (HTTP ${code}); run again`)
  const message = errorMessage(err)
  return new Error(`${doing}: ${message}`, { cause: err })
}
