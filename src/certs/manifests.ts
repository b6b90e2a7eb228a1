import { isMap, isScalar, isSeq, parseAllDocuments, stringify, type Node, type YAMLMap } from 'yaml'

export const SECRET_NAME = 'neverpull-guard-tls'
export const WEBHOOK_CONFIGURATION_KIND = 'ValidatingWebhookConfiguration'
/** Steering's registration: the same Service, so the same caBundle. */
export const MUTATING_WEBHOOK_CONFIGURATION_KIND = 'MutatingWebhookConfiguration'
const WEBHOOK_CONFIGURATION_KINDS: ReadonlySet<unknown> = new Set([
  WEBHOOK_CONFIGURATION_KIND,
  MUTATING_WEBHOOK_CONFIGURATION_KIND,
])

/** A YAML scalar's text for a message; a missing, null or non-scalar value gives `fallback`. */
function scalarText(value: unknown, fallback: string): string {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : fallback
}

export interface SecretInput {
  namespace: string
  cert: string
  key: string
  ca: string
}

/** The `kubernetes.io/tls` Secret the webhook Deployment mounts. */
export function secretManifest(input: SecretInput): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64')
  return stringify(
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: SECRET_NAME, namespace: input.namespace },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': b64(input.cert), 'tls.key': b64(input.key), 'ca.crt': b64(input.ca) },
    },
    { lineWidth: 0 },
  )
}

export function caBundleOf(caPem: string): string {
  return Buffer.from(caPem).toString('base64')
}

export interface PatchedYaml {
  text: string
  /** `metadata.name/webhooks[i].name` of every webhook whose caBundle was set. */
  patched: string[]
  /** Webhooks that were left alone, with the reason. */
  skipped: string[]
}

interface Edit {
  at: number
  end: number
  text: string
}

/**
 * Sets `clientConfig.caBundle` of every webhook in every Validating- and MutatingWebhookConfiguration of a
 * (multi-document) YAML file. Edits the text in place rather than re-serialising, so
 * comments, quoting, flow style and the other documents stay byte for byte as written.
 */
export function patchWebhookConfigYaml(source: string, caBundle: string): PatchedYaml {
  const docs = parseAllDocuments(source)
  const edits: Edit[] = []
  const patched: string[] = []
  const skipped: string[] = []
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`the file is not valid YAML: ${doc.errors[0]?.message ?? ''}`)
    if (!WEBHOOK_CONFIGURATION_KINDS.has(doc.get('kind'))) continue
    const configName = scalarText(doc.getIn(['metadata', 'name']), '(unnamed)')
    const webhooks = doc.get('webhooks', true)
    if (!isSeq(webhooks)) {
      skipped.push(`${configName}: has no webhooks list`)
      continue
    }
    webhooks.items.forEach((item, i) => {
      const label = `${configName}/${isMap(item) ? scalarText(item.get('name'), `webhooks[${i}]`) : `webhooks[${i}]`}`
      const clientConfig = isMap(item) ? item.get('clientConfig', true) : undefined
      if (!isMap(clientConfig)) {
        skipped.push(`${label}: has no clientConfig`)
        return
      }
      edits.push(caBundleEdit(source, clientConfig, caBundle))
      patched.push(label)
    })
  }
  let text = source
  for (const edit of edits.sort((a, b) => b.at - a.at)) {
    text = text.slice(0, edit.at) + edit.text + text.slice(edit.end)
  }
  verify(text, patched.length, caBundle)
  return { text, patched, skipped }
}

function caBundleEdit(source: string, clientConfig: YAMLMap, caBundle: string): Edit {
  const pair = clientConfig.items.find((p) => isScalar(p.key) && p.key.value === 'caBundle')
  if (pair !== undefined) {
    const value = pair.value as Node | null
    const range = value?.range
    if (range !== undefined && range !== null && range[1] > range[0]) {
      const quote = isScalar(value) ? value.type : undefined
      const text = quote === 'QUOTE_DOUBLE' ? `"${caBundle}"` : quote === 'QUOTE_SINGLE' ? `'${caBundle}'` : caBundle
      return { at: range[0], end: range[1], text }
    }
    // `caBundle:` with nothing after the colon.
    const keyEnd = (pair.key as Node).range?.[1] ?? 0
    const colon = source.indexOf(':', keyEnd)
    return { at: colon + 1, end: colon + 1, text: ` ${caBundle}` }
  }
  const range = clientConfig.range
  if (range === undefined || range === null) throw new Error('clientConfig has no position in the source')
  if (clientConfig.flow === true) {
    let at = source.lastIndexOf('}', range[1])
    while (at > 0 && /\s/.test(source[at - 1] ?? '')) at--
    const sep = clientConfig.items.length > 0 ? ', ' : ''
    return { at, end: at, text: `${sep}caBundle: ${caBundle}` }
  }
  const firstKey = clientConfig.items[0]?.key as Node | undefined
  const keyStart = firstKey?.range?.[0] ?? range[0]
  const indent = ' '.repeat(keyStart - (source.lastIndexOf('\n', keyStart - 1) + 1))
  const end = range[1]
  if (source[end - 1] === '\n') return { at: end, end, text: `${indent}caBundle: ${caBundle}\n` }
  return { at: end, end, text: `\n${indent}caBundle: ${caBundle}` }
}

// The edits work on offsets; re-reading the result proves they landed where intended.
function verify(text: string, expected: number, caBundle: string): void {
  let found = 0
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`patching produced invalid YAML: ${doc.errors[0]?.message ?? ''}`)
    if (!WEBHOOK_CONFIGURATION_KINDS.has(doc.get('kind'))) continue
    const webhooks = doc.get('webhooks')
    if (!isSeq(webhooks)) continue
    for (const item of webhooks.items) {
      if (isMap(item) && isMap(item.get('clientConfig')) && item.getIn(['clientConfig', 'caBundle']) === caBundle)
        found++
    }
  }
  if (found !== expected) throw new Error(`patching set ${found} of ${expected} caBundle fields`)
}
