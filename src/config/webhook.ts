import { hostname } from 'node:os'
import { SERVICE_ACCOUNT_DIR } from '../api/service-account.js'
import { durationValue, integerValue, parseFlags, usage, UsageError, type CommandSpec } from '../util/flags.js'
import {
  DEFAULT_AGENT_SERVICE_ACCOUNT,
  DEFAULT_STEER_MAX_NODES,
  type Mode,
  type ServiceAccountRef,
} from '../api/types.js'
import { DEFAULT_IMAGE_GC, type ImageGcPolicy } from '../api/image-gc.js'
import { parsePullableRegistries, type PullableRegistries } from '../api/registries.js'
import { isDns1123Label, isDns1123Subdomain } from '../util/dns-name.js'

// Every setting of the webhook, from flags first and then NEVERPULL_* environment
// variables, validated once here; nothing else reads process.env.

export interface WebhookConfig {
  port: number
  host: string
  /** Plain-HTTP listener for probes and Prometheus; 0 turns it off. */
  metricsPort: number
  tlsCert: string
  tlsKey: string
  inventoryFile?: string
  kubeconfig?: string
  /** In a pod: the service account's token and ca.crt (used without --kubeconfig). */
  serviceAccountDir: string
  /** In a pod: the API server's address, from KUBERNETES_SERVICE_HOST and _PORT. */
  kubernetesService?: { host: string; port: string }
  mode: Exclude<Mode, 'off'>
  /** A NodeImageSet older than this is unknown: 3 × the agent's 5 min heartbeat. */
  staleAfterMs: number
  /** After SIGTERM, keep serving this long while endpoints drain, then close. */
  shutdownDelayMs: number
  logLevel: string
  /** The only ServiceAccount (besides system:masters) that may write NodeImageSets, each agent its own node's. */
  agentServiceAccount: ServiceAccountRef
  /** How often the audit leader re-checks running workloads; 0 turns the audit off. */
  auditIntervalMs: number
  /** This replica's name (Lease holder identity) and namespace (where the Lease lives). */
  podName: string
  podNamespace: string
  /** `npm start`: dev certificates in certs/, the example inventory, loopback only. */
  dev: boolean
  /** Registries the nodes can pull from, where a namespace has no annotation; `*` = any. */
  pullableRegistries: PullableRegistries
  /** Steer pods in every namespace not labelled `neverpull.dev/steer=false` (POST /mutate). */
  steer: boolean
  /** Past this many nodes, steering writes a shared node label or leaves the pod alone. */
  steerMaxNodes: number
  /** The kubelets' image GC settings (not visible through the API). */
  imageGc: ImageGcPolicy
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
const MODES = ['enforce', 'warn', 'audit'] as const

export const WEBHOOK_COMMAND: CommandSpec = {
  name: 'neverpull-guard webhook',
  description: 'Serves the validating admission webhook. Flags win over their environment variables (in brackets).',
  flags: [
    {
      name: 'port',
      value: 'N',
      env: 'NEVERPULL_PORT',
      default: '8443',
      help: 'HTTPS port for /validate, /healthz, /readyz, /metrics',
    },
    {
      name: 'host',
      value: 'ADDR',
      env: 'NEVERPULL_HOST',
      default: '0.0.0.0; 127.0.0.1 with --dev',
      help: 'listen address',
    },
    {
      name: 'metrics-port',
      value: 'N',
      env: 'NEVERPULL_METRICS_PORT',
      default: '9090',
      help: 'plain-HTTP port for probes and Prometheus, 0 = off',
    },
    {
      name: 'tls-cert',
      value: 'FILE',
      env: 'NEVERPULL_TLS_CERT',
      help: 'serving certificate, reloaded when it changes',
    },
    { name: 'tls-key', value: 'FILE', env: 'NEVERPULL_TLS_KEY', help: 'its private key' },
    {
      name: 'inventory-file',
      value: 'FILE',
      env: 'NEVERPULL_INVENTORY_FILE',
      help: 'static inventory (kubectl get nodes,nodeimagesets -o yaml)',
    },
    {
      name: 'kubeconfig',
      value: 'FILE',
      help: 'watch a cluster with this kubeconfig (default: in-cluster, else $KUBECONFIG or ~/.kube/config)',
    },
    {
      name: 'service-account-dir',
      value: 'DIR',
      help: 'in a cluster: where the token and ca.crt are mounted',
      default: SERVICE_ACCOUNT_DIR,
    },
    {
      name: 'mode',
      value: 'MODE',
      env: 'NEVERPULL_MODE',
      choices: MODES,
      default: 'enforce',
      help: 'for namespaces without the neverpull.dev/mode label',
    },
    {
      name: 'stale-after',
      value: 'DUR',
      env: 'NEVERPULL_STALE_AFTER',
      default: '15m',
      help: 'a node image list older than this is unknown',
    },
    {
      name: 'shutdown-delay',
      value: 'DUR',
      env: 'NEVERPULL_SHUTDOWN_DELAY',
      default: '5s',
      help: 'keep serving after SIGTERM while endpoints drain',
    },
    {
      name: 'log-level',
      value: 'LEVEL',
      env: 'NEVERPULL_LOG_LEVEL',
      choices: LOG_LEVELS,
      default: 'info',
      help: 'log level',
    },
    {
      name: 'agent-service-account',
      value: 'NS:NAME',
      env: 'NEVERPULL_AGENT_SERVICE_ACCOUNT',
      default: `${DEFAULT_AGENT_SERVICE_ACCOUNT.namespace}:${DEFAULT_AGENT_SERVICE_ACCOUNT.name}`,
      help: "the agent's ServiceAccount, the only writer of NodeImageSets besides system:masters",
    },
    {
      name: 'audit-interval',
      value: 'DUR',
      env: 'NEVERPULL_AUDIT_INTERVAL',
      default: '5m',
      help:
        'with a cluster: re-check running Never workloads this often, 0 = off ' +
        '(one replica at a time, through the Lease neverpull-guard-audit in POD_NAMESPACE)',
    },
    {
      name: 'pullable-registries',
      value: 'LIST',
      env: 'NEVERPULL_PULLABLE_REGISTRIES',
      default: '*',
      help:
        'registries the nodes can pull from: host[:port],... | * (any) | none (air-gapped); IfNotPresent images ' +
        "from others are checked like Never, Always ones denied; a namespace's " +
        'neverpull.dev/pullable-registries annotation wins',
    },
    {
      name: 'steer',
      help:
        'limit pods with Never images to the nodes that hold them (POST /mutate) in every namespace not labelled ' +
        'neverpull.dev/steer=false; without it, only in namespaces labelled neverpull.dev/steer=true ' +
        '[NEVERPULL_STEER=true|false]',
    },
    {
      name: 'steer-max-nodes',
      value: 'N',
      env: 'NEVERPULL_STEER_MAX_NODES',
      default: '100',
      help: 'steer to at most N nodes by name; to more only when one node label picks exactly them',
    },
    {
      name: 'image-gc-high-threshold',
      value: 'PERCENT',
      env: 'NEVERPULL_IMAGE_GC_HIGH_THRESHOLD',
      default: '85',
      help: "the kubelets' --image-gc-high-threshold: warn when a Never image is unpinned on a node whose image filesystem is this full",
    },
    {
      name: 'image-gc-low-threshold',
      value: 'PERCENT',
      env: 'NEVERPULL_IMAGE_GC_LOW_THRESHOLD',
      default: '80',
      help: "the kubelets' --image-gc-low-threshold (GC frees space down to it)",
    },
    {
      name: 'image-maximum-gc-age',
      value: 'DUR',
      env: 'NEVERPULL_IMAGE_MAXIMUM_GC_AGE',
      default: '0',
      help: "the kubelets' --image-maximum-gc-age: unused images older than this are removed; 0 = off",
    },
    { name: 'dev', help: 'dev certificates in certs/, examples/inventory.yaml, listen on 127.0.0.1, no metrics port' },
  ],
}

export const WEBHOOK_USAGE = usage(WEBHOOK_COMMAND)

export type ConfigResult = { ok: true; config: WebhookConfig } | { ok: false; error: string }

/** `NAMESPACE:NAME`, or the full username `system:serviceaccount:NAMESPACE:NAME`. */
export function parseServiceAccount(text: string): ServiceAccountRef | undefined {
  const parts = text.replace(/^system:serviceaccount:/, '').split(':')
  if (parts.length !== 2) return undefined
  const [namespace = '', name = ''] = parts
  return isDns1123Label(namespace) && isDns1123Subdomain(name) ? { namespace, name } : undefined
}

/** Flags, then NEVERPULL_* environment variables, to a validated config; throws UsageError. */
export function parseWebhookArgs(argv: readonly string[], env: NodeJS.ProcessEnv): WebhookConfig | 'help' {
  const flags = parseFlags(WEBHOOK_COMMAND, argv, env)
  if (flags.help) return 'help'
  const dev = flags.bool('dev')
  const duration = (name: string, fallback: string): number =>
    durationValue(flags.string(name) ?? fallback, `--${name}`)
  const staleAfterMs = duration('stale-after', '15m')
  if (staleAfterMs <= 0) throw new UsageError(`--stale-after must be longer than 0`)
  const shutdownDelayMs = duration('shutdown-delay', dev ? '0s' : '5s')
  const auditIntervalMs = duration('audit-interval', '5m')
  const port = (name: string, fallback: number): number => {
    const text = flags.string(name)
    return text === undefined ? fallback : integerValue(text, `--${name}`, 0, 65535)
  }
  const saText = flags.string('agent-service-account')
  const agentServiceAccount = saText === undefined ? { ...DEFAULT_AGENT_SERVICE_ACCOUNT } : parseServiceAccount(saText)
  if (agentServiceAccount === undefined) {
    throw new UsageError(
      `--agent-service-account: "${saText}" is not NAMESPACE:NAME of a ServiceAccount (example: neverpull-system:neverpull-guard-agent)`,
    )
  }
  const pullable = parsePullableRegistries(flags.string('pullable-registries') ?? '*')
  if (!pullable.ok) throw new UsageError(`--pullable-registries: ${pullable.error}`)
  // A switch has no value to take from the environment: NEVERPULL_STEER is read here.
  const steerEnv = env['NEVERPULL_STEER'] ?? ''
  if (steerEnv !== '' && steerEnv !== 'true' && steerEnv !== 'false')
    throw new UsageError(`NEVERPULL_STEER "${steerEnv}" is not one of true, false`)
  const steerMaxText = flags.string('steer-max-nodes')
  const percent = (name: string, fallback: number): number => {
    const text = flags.string(name)
    return text === undefined ? fallback : integerValue(text, `--${name}`, 0, 100)
  }
  const imageGc: ImageGcPolicy = {
    highThresholdPercent: percent('image-gc-high-threshold', DEFAULT_IMAGE_GC.highThresholdPercent),
    lowThresholdPercent: percent('image-gc-low-threshold', DEFAULT_IMAGE_GC.lowThresholdPercent),
    maximumAgeMs: duration('image-maximum-gc-age', '0'),
  }
  // The kubelet refuses a low threshold above the high one (pkg/kubelet/images ValidatePolicy).
  if (imageGc.lowThresholdPercent > imageGc.highThresholdPercent) {
    throw new UsageError(
      `--image-gc-low-threshold (${imageGc.lowThresholdPercent}) must not be above --image-gc-high-threshold (${imageGc.highThresholdPercent}), as for the kubelet`,
    )
  }
  const config: WebhookConfig = {
    port: port('port', 8443),
    host: flags.string('host') ?? (dev ? '127.0.0.1' : '0.0.0.0'),
    metricsPort: port('metrics-port', dev ? 0 : 9090),
    tlsCert: flags.string('tls-cert') ?? (dev ? 'certs/tls.crt' : '/etc/neverpull/tls/tls.crt'),
    tlsKey: flags.string('tls-key') ?? (dev ? 'certs/tls.key' : '/etc/neverpull/tls/tls.key'),
    mode: (flags.string('mode') ?? 'enforce') as WebhookConfig['mode'],
    staleAfterMs,
    shutdownDelayMs,
    logLevel: flags.string('log-level') ?? 'info',
    agentServiceAccount,
    auditIntervalMs,
    // The downward API sets these in the cluster; a local run is its own replica.
    podName: env['POD_NAME'] || `${hostname()}-${process.pid}`,
    podNamespace: env['POD_NAMESPACE'] || 'neverpull-system',
    dev,
    pullableRegistries: pullable.value,
    steer: flags.bool('steer') || steerEnv === 'true',
    steerMaxNodes:
      steerMaxText === undefined ? DEFAULT_STEER_MAX_NODES : integerValue(steerMaxText, '--steer-max-nodes', 1, 5000),
    imageGc,
    serviceAccountDir: flags.string('service-account-dir') ?? SERVICE_ACCOUNT_DIR,
  }
  const inventoryFile = flags.string('inventory-file') ?? (dev ? 'examples/inventory.yaml' : undefined)
  if (inventoryFile !== undefined) config.inventoryFile = inventoryFile
  // Without the flag, $KUBECONFIG (all its files, merged as kubectl does), ~/.kube/config
  // or the pod's service account: src/kube/config.ts.
  const kubeconfig = flags.string('kubeconfig')
  if (kubeconfig !== undefined) config.kubeconfig = kubeconfig
  const serviceHost = env['KUBERNETES_SERVICE_HOST']
  if (serviceHost) config.kubernetesService = { host: serviceHost, port: env['KUBERNETES_SERVICE_PORT'] || '443' }
  return config
}

/** The config, or the usage error's message (help counts as an error here: callers pass none). */
export function webhookConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ConfigResult {
  try {
    const config = parseWebhookArgs(argv, env)
    if (config === 'help') return { ok: false, error: 'help requested' }
    return { ok: true, config }
  } catch (err) {
    if (err instanceof UsageError) return { ok: false, error: err.message }
    throw err
  }
}
