import { readFile, stat } from 'node:fs/promises'
import { isIP } from 'node:net'
import { DEFAULT_DAYS, DEV_NAMESPACE, DEV_SERVICE, ensureCertificates, writeFileAtomic, type EnsureResult } from './files.js'
import { normalizeHost } from './generate.js'
import { patchLiveWebhookConfig, type PatchLive } from './live.js'
import { SECRET_NAME, caBundleOf, patchWebhookConfigYaml, secretManifest } from './manifests.js'

export interface Output {
  stdout: { write(chunk: string): unknown }
  stderr: { write(chunk: string): unknown }
}

export interface CertsDeps {
  now?: Date
  patchLive?: PatchLive
}

export interface CertsFlags {
  service: string
  namespace: string
  outDir: string
  days: number
  hosts: string[]
  force: boolean
  printCaBundle: boolean
  secretManifest: string | undefined
  patchWebhookConfig: string | undefined
  patchLive: string | undefined
  kubeconfig: string | undefined
  help: boolean
}

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2

const MAX_DAYS = 3650

export const USAGE = `Usage: neverpull-guard certs [flags]

Creates (or keeps, while still good) a private CA and the webhook's serving certificate.

  --service NAME                Service name in front of the webhook (default ${DEV_SERVICE})
  --namespace NAME              Namespace of that Service (default ${DEV_NAMESPACE})
  --out-dir DIR                 Where ca.crt, ca.key, tls.crt, tls.key go (default certs/)
  --days N                      Lifetime of new certificates in days (default ${DEFAULT_DAYS})
  --host NAME|IP                Extra name or IP on the serving certificate (repeatable)
  --force                       Replace the CA and serving certificate even if still good
  --print-ca-bundle             Print base64 of ca.crt (the webhook's caBundle) to stdout
  --secret-manifest FILE|-      Write a kubernetes.io/tls Secret "${SECRET_NAME}" (- for stdout)
  --patch-webhook-config FILE   Set every clientConfig.caBundle in a ValidatingWebhookConfiguration YAML file
  --patch-live NAME             Set caBundle on the live ValidatingWebhookConfiguration NAME
  --kubeconfig FILE             Kubeconfig for --patch-live (default: $KUBECONFIG, ~/.kube/config, in-cluster)
  -h, --help                    Show this help
`

type FlagKind = 'string' | 'strings' | 'boolean'

const FLAGS: Record<string, { kind: FlagKind; field: keyof CertsFlags }> = {
  service: { kind: 'string', field: 'service' },
  namespace: { kind: 'string', field: 'namespace' },
  'out-dir': { kind: 'string', field: 'outDir' },
  days: { kind: 'string', field: 'days' },
  host: { kind: 'strings', field: 'hosts' },
  force: { kind: 'boolean', field: 'force' },
  'print-ca-bundle': { kind: 'boolean', field: 'printCaBundle' },
  'secret-manifest': { kind: 'string', field: 'secretManifest' },
  'patch-webhook-config': { kind: 'string', field: 'patchWebhookConfig' },
  'patch-live': { kind: 'string', field: 'patchLive' },
  kubeconfig: { kind: 'string', field: 'kubeconfig' },
  help: { kind: 'boolean', field: 'help' },
}

export class UsageError extends Error {}

export async function runCerts(argv: string[], out: Output, deps: CertsDeps = {}): Promise<number> {
  let flags: CertsFlags
  try {
    flags = parseCertsFlags(argv)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    out.stderr.write(`neverpull-guard certs: ${err.message}\nRun 'neverpull-guard certs --help' for the flags.\n`)
    return EXIT_USAGE
  }
  if (flags.help) {
    out.stdout.write(USAGE)
    return EXIT_OK
  }
  try {
    await execute(flags, out, deps)
    return EXIT_OK
  } catch (err) {
    out.stderr.write(`neverpull-guard certs: ${err instanceof Error ? err.message : String(err)}\n`)
    return EXIT_FAILED
  }
}

async function execute(flags: CertsFlags, out: Output, deps: CertsDeps): Promise<void> {
  const result = await ensureCertificates({
    outDir: flags.outDir,
    service: flags.service,
    namespace: flags.namespace,
    hosts: flags.hosts,
    days: flags.days,
    force: flags.force,
    now: deps.now ?? new Date(),
  })
  // stdout is kept for what a pipe wants (the bundle, a manifest); progress goes to stderr.
  report(result, out)
  const [ca, cert, key] = await Promise.all([
    readFile(result.paths.caCert, 'utf8'),
    readFile(result.paths.cert, 'utf8'),
    readFile(result.paths.key, 'utf8'),
  ])
  const caBundle = caBundleOf(ca)

  if (flags.printCaBundle) out.stdout.write(`${caBundle}\n`)

  if (flags.secretManifest !== undefined) {
    const manifest = secretManifest({ namespace: flags.namespace, cert, key, ca })
    if (flags.secretManifest === '-') {
      out.stdout.write(manifest)
    } else {
      // It holds the private key, so it gets the key's mode.
      await writeFileAtomic(flags.secretManifest, manifest, 0o600)
      out.stderr.write(`wrote Secret ${flags.namespace}/${SECRET_NAME} to ${flags.secretManifest}\n`)
    }
  }

  if (flags.patchWebhookConfig !== undefined) {
    const file = flags.patchWebhookConfig
    let source: string
    let mode: number
    try {
      source = await readFile(file, 'utf8')
      mode = (await stat(file)).mode & 0o777
    } catch (err) {
      throw new Error(`cannot read --patch-webhook-config ${file}: ${(err as Error).message}`)
    }
    let patched: ReturnType<typeof patchWebhookConfigYaml>
    try {
      patched = patchWebhookConfigYaml(source, caBundle)
    } catch (err) {
      throw new Error(`${file}: ${(err as Error).message}`)
    }
    for (const skip of patched.skipped) out.stderr.write(`${file}: skipped ${skip}\n`)
    if (patched.patched.length === 0) {
      throw new Error(`${file}: no ValidatingWebhookConfiguration webhook with a clientConfig found; nothing to patch`)
    }
    if (patched.text !== source) await writeFileAtomic(file, patched.text, mode)
    out.stderr.write(`${file}: caBundle set on ${patched.patched.join(', ')}\n`)
  }

  if (flags.patchLive !== undefined) {
    const patchLive = deps.patchLive ?? patchLiveWebhookConfig
    const count = await patchLive({ name: flags.patchLive, caBundle, kubeconfig: flags.kubeconfig })
    out.stderr.write(`ValidatingWebhookConfiguration ${flags.patchLive}: caBundle set on ${count} webhook(s)\n`)
  }
}

function report(result: EnsureResult, out: Output): void {
  const { paths, reasons } = result
  const why = (reason: string | undefined): string => (reason === undefined ? '' : ` (${reason})`)
  out.stderr.write(`CA ${result.ca}${why(reasons.ca)}: ${paths.caCert}, ${paths.caKey}\n`)
  out.stderr.write(`serving certificate ${result.serving}${why(reasons.serving)}: ${paths.cert}, ${paths.key}\n`)
}

export function parseCertsFlags(argv: readonly string[]): CertsFlags {
  const flags: CertsFlags = {
    service: DEV_SERVICE,
    namespace: DEV_NAMESPACE,
    outDir: 'certs',
    days: DEFAULT_DAYS,
    hosts: [],
    force: false,
    printCaBundle: false,
    secretManifest: undefined,
    patchWebhookConfig: undefined,
    patchLive: undefined,
    kubeconfig: undefined,
    help: false,
  }
  const seen = new Set<string>()
  let days: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '-h') {
      flags.help = true
      continue
    }
    if (!arg.startsWith('--') || arg === '--') throw new UsageError(`unexpected argument '${arg}'; certs takes only flags`)
    const eq = arg.indexOf('=')
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
    const spec = FLAGS[name]
    if (spec === undefined) throw new UsageError(`unknown flag --${name}`)
    if (spec.kind !== 'strings' && seen.has(name)) throw new UsageError(`--${name} given more than once`)
    seen.add(name)
    if (spec.kind === 'boolean') {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`)
      ;(flags[spec.field] as boolean) = true
      continue
    }
    let value: string
    if (eq !== -1) {
      value = arg.slice(eq + 1)
    } else {
      const next = argv[i + 1]
      // `-` alone is a value (stdout); anything else starting with a dash is the next flag.
      if (next === undefined || (next.startsWith('-') && next !== '-')) throw new UsageError(`--${name} needs a value`)
      value = next
      i++
    }
    if (value === '') throw new UsageError(`--${name} needs a non-empty value`)
    if (name === 'days') days = value
    else if (spec.kind === 'strings') (flags[spec.field] as string[]).push(value)
    else (flags[spec.field] as string | undefined) = value
  }
  if (days !== undefined) flags.days = parseDays(days)
  if (!DNS_LABEL.test(flags.service)) {
    throw new UsageError(`--service '${flags.service}' is not a valid Service name (lower-case letters, digits and '-', starting with a letter, at most 63)`)
  }
  if (!DNS_LABEL_1123.test(flags.namespace)) {
    throw new UsageError(`--namespace '${flags.namespace}' is not a valid namespace name (lower-case letters, digits and '-', at most 63)`)
  }
  for (const host of flags.hosts) {
    const normalized = normalizeHost(host)
    if (isIP(normalized) === 0 && !isDnsName(normalized)) {
      throw new UsageError(`--host '${host}' is neither an IP address nor a DNS name`)
    }
  }
  if (flags.kubeconfig !== undefined && flags.patchLive === undefined) {
    throw new UsageError('--kubeconfig is only used with --patch-live NAME')
  }
  if (flags.printCaBundle && flags.secretManifest === '-') {
    throw new UsageError('--print-ca-bundle and --secret-manifest - both write to stdout; use one, or give --secret-manifest a FILE')
  }
  return flags
}

const DNS_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/
const DNS_LABEL_1123 = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/

function isDnsName(name: string): boolean {
  if (name.length > 253) return false
  const labels = name.split('.')
  // A leading `*` label is allowed: a wildcard certificate for an ingress-style name.
  return labels.every((label, i) => (i === 0 && label === '*' && labels.length > 1) || /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(label))
}

function parseDays(value: string): number {
  const days = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new UsageError(`--days '${value}' must be a whole number of days from 1 to ${MAX_DAYS}`)
  }
  return days
}
