import { readFile, stat } from 'node:fs/promises'
import { isIP } from 'node:net'
import {
  DEFAULT_DAYS,
  DEV_NAMESPACE,
  DEV_SERVICE,
  ensureCertificates,
  writeFileAtomic,
  type EnsureResult,
} from './files.js'
import { normalizeHost } from './generate.js'
import { patchLiveWebhookConfig, type PatchLive } from './live.js'
import { SECRET_NAME, caBundleOf, patchWebhookConfigYaml, secretManifest } from './manifests.js'
import { EXIT_USAGE, parseFlags, usage, UsageError, type CommandSpec } from '../util/flags.js'
import { errorMessage } from '../util/guards.js'
import { isDns1035Label, isDns1123Label } from '../util/dns-name.js'

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
export { EXIT_USAGE }

const MAX_DAYS = 3650

export const CERTS_COMMAND: CommandSpec = {
  name: 'neverpull-guard certs',
  description: "Creates (or keeps, while still good) a private CA and the webhook's serving certificate.",
  flags: [
    { name: 'service', value: 'NAME', help: 'Service name in front of the webhook', default: DEV_SERVICE },
    { name: 'namespace', value: 'NAME', help: 'Namespace of that Service', default: DEV_NAMESPACE },
    { name: 'out-dir', value: 'DIR', help: 'Where ca.crt, ca.key, tls.crt, tls.key go', default: 'certs/' },
    { name: 'days', value: 'N', help: 'Lifetime of new certificates in days', default: String(DEFAULT_DAYS) },
    { name: 'host', value: 'NAME|IP', help: 'Extra name or IP on the serving certificate', repeatable: true },
    { name: 'force', help: 'Replace the CA and serving certificate even if still good' },
    { name: 'print-ca-bundle', help: "Print base64 of ca.crt (the webhook's caBundle) to stdout" },
    {
      name: 'secret-manifest',
      value: 'FILE|-',
      help: `Write a kubernetes.io/tls Secret "${SECRET_NAME}" (- for stdout)`,
    },
    {
      name: 'patch-webhook-config',
      value: 'FILE',
      help: 'Set every clientConfig.caBundle in the Validating- and MutatingWebhookConfigurations of a YAML file',
    },
    {
      name: 'patch-live',
      value: 'NAME',
      help: 'Set caBundle on the live ValidatingWebhookConfiguration NAME, and the MutatingWebhookConfiguration NAME if installed',
    },
    {
      name: 'kubeconfig',
      value: 'FILE',
      help: 'Kubeconfig for --patch-live (default: $KUBECONFIG, ~/.kube/config, in-cluster)',
    },
  ],
  unknownFlag: (flag) => `unknown flag ${flag}`,
}

export const USAGE = usage(CERTS_COMMAND)

export { UsageError }

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
    out.stderr.write(`neverpull-guard certs: ${errorMessage(err)}\n`)
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
      throw new Error(`cannot read --patch-webhook-config ${file}: ${errorMessage(err)}`, { cause: err })
    }
    let patched: ReturnType<typeof patchWebhookConfigYaml>
    try {
      patched = patchWebhookConfigYaml(source, caBundle)
    } catch (err) {
      throw new Error(`${file}: ${errorMessage(err)}`, { cause: err })
    }
    for (const skip of patched.skipped) out.stderr.write(`${file}: skipped ${skip}\n`)
    if (patched.patched.length === 0) {
      throw new Error(
        `${file}: no Validating- or MutatingWebhookConfiguration webhook with a clientConfig found; nothing to patch`,
      )
    }
    if (patched.text !== source) await writeFileAtomic(file, patched.text, mode)
    out.stderr.write(`${file}: caBundle set on ${patched.patched.join(', ')}\n`)
  }

  if (flags.patchLive !== undefined) {
    const patchLive = deps.patchLive ?? patchLiveWebhookConfig
    for (const done of await patchLive({ name: flags.patchLive, caBundle, kubeconfig: flags.kubeconfig })) {
      out.stderr.write(
        done.missing === true
          ? `${done.kind} ${flags.patchLive}: not installed (steering's registration), skipped\n`
          : `${done.kind} ${flags.patchLive}: caBundle set on ${done.count} webhook(s)\n`,
      )
    }
  }
}

function report(result: EnsureResult, out: Output): void {
  const { paths, reasons } = result
  const why = (reason: string | undefined): string => (reason === undefined ? '' : ` (${reason})`)
  out.stderr.write(`CA ${result.ca}${why(reasons.ca)}: ${paths.caCert}, ${paths.caKey}\n`)
  out.stderr.write(`serving certificate ${result.serving}${why(reasons.serving)}: ${paths.cert}, ${paths.key}\n`)
}

export function parseCertsFlags(argv: readonly string[]): CertsFlags {
  const parsed = parseFlags(CERTS_COMMAND, argv)
  const days = parsed.string('days')
  const flags: CertsFlags = {
    service: parsed.string('service') ?? DEV_SERVICE,
    namespace: parsed.string('namespace') ?? DEV_NAMESPACE,
    outDir: parsed.string('out-dir') ?? 'certs',
    days: days === undefined ? DEFAULT_DAYS : parseDays(days),
    hosts: parsed.strings('host'),
    force: parsed.bool('force'),
    printCaBundle: parsed.bool('print-ca-bundle'),
    secretManifest: parsed.string('secret-manifest'),
    patchWebhookConfig: parsed.string('patch-webhook-config'),
    patchLive: parsed.string('patch-live'),
    kubeconfig: parsed.string('kubeconfig'),
    help: parsed.help,
  }
  if (!isDns1035Label(flags.service)) {
    throw new UsageError(
      `--service '${flags.service}' is not a valid Service name (lower-case letters, digits and '-', starting with a letter, at most 63)`,
    )
  }
  if (!isDns1123Label(flags.namespace)) {
    throw new UsageError(
      `--namespace '${flags.namespace}' is not a valid namespace name (lower-case letters, digits and '-', at most 63)`,
    )
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
    throw new UsageError(
      '--print-ca-bundle and --secret-manifest - both write to stdout; use one, or give --secret-manifest a FILE',
    )
  }
  return flags
}

function isDnsName(name: string): boolean {
  if (name.length > 253) return false
  const labels = name.split('.')
  // A leading `*` label is allowed: a wildcard certificate for an ingress-style name.
  return labels.every((label, i) => (i === 0 && label === '*' && labels.length > 1) || isDns1123Label(label))
}

function parseDays(value: string): number {
  const days = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new UsageError(`--days '${value}' must be a whole number of days from 1 to ${MAX_DAYS}`)
  }
  return days
}
