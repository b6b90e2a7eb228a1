import { loadKubeConfig } from '../kube/config.js'
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
  const { AdmissionregistrationV1Api, PatchStrategy, setHeaderOptions } = await import('@kubernetes/client-node')
  const kc = await loadKubeConfig(options.kubeconfig)
  const api = kc.makeApiClient(AdmissionregistrationV1Api)
  const header = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch)
  const results: LivePatched[] = []

  const kind = 'ValidatingWebhookConfiguration'
  let current: Awaited<ReturnType<typeof api.readValidatingWebhookConfiguration>>
  try {
    current = await api.readValidatingWebhookConfiguration({ name: options.name })
  } catch (err) {
    throw describe(err, `reading ${kind} ${options.name}`)
  }
  const webhooks = current.webhooks ?? []
  if (webhooks.length === 0) throw new Error(`${kind} ${options.name} has no webhooks to patch`)
  const body = caBundlePatch(
    webhooks.map((w) => w.name),
    options.caBundle,
  )
  try {
    await api.patchValidatingWebhookConfiguration({ name: options.name, body, fieldManager: 'neverpull-guard-certs' }, header)
  } catch (err) {
    throw describe(err, `patching ${kind} ${options.name}`)
  }
  results.push({ kind, count: webhooks.length })

  const mutatingKind = 'MutatingWebhookConfiguration'
  let mutating: Awaited<ReturnType<typeof api.readMutatingWebhookConfiguration>>
  try {
    mutating = await api.readMutatingWebhookConfiguration({ name: options.name })
  } catch (err) {
    if ((err as { code?: unknown }).code !== 404) throw describe(err, `reading ${mutatingKind} ${options.name}`)
    results.push({ kind: mutatingKind, count: 0, missing: true })
    return results
  }
  const steering = mutating.webhooks ?? []
  if (steering.length > 0) {
    const steerBody = caBundlePatch(
      steering.map((w) => w.name),
      options.caBundle,
    )
    try {
      await api.patchMutatingWebhookConfiguration({ name: options.name, body: steerBody, fieldManager: 'neverpull-guard-certs' }, header)
    } catch (err) {
      throw describe(err, `patching ${mutatingKind} ${options.name}`)
    }
  }
  results.push({ kind: mutatingKind, count: steering.length })
  return results
}

function describe(err: unknown, doing: string): Error {
  const code = (err as { code?: unknown }).code
  if (code === 404) return new Error(`${doing}: not found (is it installed? kubectl get validatingwebhookconfigurations)`)
  if (code === 401 || code === 403) return new Error(`${doing}: not allowed (HTTP ${code}); check the kubeconfig's user and RBAC`)
  if (code === 409 || code === 422) return new Error(`${doing}: the webhooks changed while patching (HTTP ${code}); run again`)
  const message = errorMessage(err)
  return new Error(`${doing}: ${message}`)
}
