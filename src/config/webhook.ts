import { Ajv } from 'ajv'
import { hostname } from 'node:os'
import { parseArgs } from 'node:util'
import { parseDuration } from '../util/duration.js'
import { DEFAULT_AGENT_SERVICE_ACCOUNT, type Mode, type ServiceAccountRef } from '../api/types.js'
import { parsePullableRegistries, type PullableRegistries } from '../api/registries.js'

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
}

export const WEBHOOK_USAGE = `Usage: neverpull-guard webhook [flags]

Flags (environment variable in brackets):
  --port N              HTTPS port for /validate, /healthz, /readyz, /metrics (8443) [NEVERPULL_PORT]
  --host ADDR           listen address (0.0.0.0; 127.0.0.1 with --dev) [NEVERPULL_HOST]
  --metrics-port N      plain-HTTP port for probes and Prometheus, 0 = off (9090) [NEVERPULL_METRICS_PORT]
  --tls-cert FILE       serving certificate, reloaded when it changes [NEVERPULL_TLS_CERT]
  --tls-key FILE        its private key [NEVERPULL_TLS_KEY]
  --inventory-file FILE static inventory (kubectl get nodes,nodeimagesets -o yaml) [NEVERPULL_INVENTORY_FILE]
  --kubeconfig FILE     watch a cluster with this kubeconfig (default: in-cluster, else ~/.kube/config) [KUBECONFIG]
  --mode MODE           enforce | warn | audit, for namespaces without the neverpull.dev/mode label (enforce) [NEVERPULL_MODE]
  --stale-after DUR     a node image list older than this is unknown (15m) [NEVERPULL_STALE_AFTER]
  --shutdown-delay DUR  keep serving after SIGTERM while endpoints drain (5s) [NEVERPULL_SHUTDOWN_DELAY]
  --log-level LEVEL     fatal | error | warn | info | debug | trace (info) [NEVERPULL_LOG_LEVEL]
  --agent-service-account NS:NAME
                        the agent's ServiceAccount, the only writer of NodeImageSets besides system:masters
                        (neverpull-system:neverpull-guard-agent) [NEVERPULL_AGENT_SERVICE_ACCOUNT]
  --audit-interval DUR  with a cluster: re-check running Never workloads this often, 0 = off (5m) [NEVERPULL_AUDIT_INTERVAL]
                        (one replica at a time, through the Lease neverpull-guard-audit in POD_NAMESPACE)
  --pullable-registries LIST
                        registries the nodes can pull from: host[:port],... | * (any, default) | none
                        (air-gapped); IfNotPresent images from others are checked like Never, Always
                        ones denied; a namespace's neverpull.dev/pullable-registries annotation wins
                        [NEVERPULL_PULLABLE_REGISTRIES]
  --dev                 dev certificates in certs/, examples/inventory.yaml, listen on 127.0.0.1
`

const schema = {
  type: 'object',
  required: [
    'port', 'host', 'metricsPort', 'tlsCert', 'tlsKey', 'mode', 'staleAfterMs', 'shutdownDelayMs', 'logLevel',
    'agentServiceAccount', 'auditIntervalMs', 'podName', 'podNamespace', 'dev', 'pullableRegistries',
  ],
  additionalProperties: false,
  properties: {
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    host: { type: 'string', minLength: 1 },
    metricsPort: { type: 'integer', minimum: 0, maximum: 65535 },
    tlsCert: { type: 'string', minLength: 1 },
    tlsKey: { type: 'string', minLength: 1 },
    inventoryFile: { type: 'string', minLength: 1 },
    kubeconfig: { type: 'string', minLength: 1 },
    mode: { enum: ['enforce', 'warn', 'audit'] },
    staleAfterMs: { type: 'number', exclusiveMinimum: 0 },
    shutdownDelayMs: { type: 'number', minimum: 0 },
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    agentServiceAccount: {
      type: 'object',
      required: ['namespace', 'name'],
      additionalProperties: false,
      properties: { namespace: { type: 'string', minLength: 1 }, name: { type: 'string', minLength: 1 } },
    },
    auditIntervalMs: { type: 'number', minimum: 0 },
    podName: { type: 'string', minLength: 1 },
    podNamespace: { type: 'string', minLength: 1 },
    dev: { type: 'boolean' },
    pullableRegistries: { type: 'object' },
  },
} as const

const validate = new Ajv({ allErrors: true, strict: false }).compile(schema)

export type ConfigResult = { ok: true; config: WebhookConfig } | { ok: false; error: string }

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/

/** `NAMESPACE:NAME`, or the full username `system:serviceaccount:NAMESPACE:NAME`. */
export function parseServiceAccount(text: string): ServiceAccountRef | undefined {
  const parts = text.replace(/^system:serviceaccount:/, '').split(':')
  if (parts.length !== 2) return undefined
  const [namespace = '', name = ''] = parts
  return DNS_LABEL.test(namespace) && DNS_SUBDOMAIN.test(name) ? { namespace, name } : undefined
}

function integer(text: string | undefined): number | string | undefined {
  if (text === undefined) return undefined
  return /^\d+$/.test(text) ? Number(text) : text
}

export function webhookConfig(argv: string[], env: NodeJS.ProcessEnv): ConfigResult {
  let values
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        'metrics-port': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'inventory-file': { type: 'string' },
        kubeconfig: { type: 'string' },
        mode: { type: 'string' },
        'stale-after': { type: 'string' },
        'shutdown-delay': { type: 'string' },
        'log-level': { type: 'string' },
        'agent-service-account': { type: 'string' },
        'audit-interval': { type: 'string' },
        dev: { type: 'boolean' },
        'pullable-registries': { type: 'string' },
      },
    }).values
  } catch (err) {
    return { ok: false, error: (err as Error).message }
  }
  const dev = values.dev === true
  const durations: Array<[string, string]> = [
    ['--stale-after', values['stale-after'] ?? env['NEVERPULL_STALE_AFTER'] ?? '15m'],
    ['--shutdown-delay', values['shutdown-delay'] ?? env['NEVERPULL_SHUTDOWN_DELAY'] ?? (dev ? '0s' : '5s')],
    ['--audit-interval', values['audit-interval'] ?? env['NEVERPULL_AUDIT_INTERVAL'] ?? '5m'],
  ]
  const ms: number[] = []
  for (const [flag, text] of durations) {
    const d = parseDuration(text)
    if (d === undefined) return { ok: false, error: `${flag}: "${text}" is not a duration (examples: 500ms, 10s, 5m, 1h)` }
    ms.push(d)
  }
  const saText = values['agent-service-account'] ?? env['NEVERPULL_AGENT_SERVICE_ACCOUNT']
  const agentServiceAccount = saText === undefined ? { ...DEFAULT_AGENT_SERVICE_ACCOUNT } : parseServiceAccount(saText)
  if (agentServiceAccount === undefined) {
    return {
      ok: false,
      error: `--agent-service-account: "${saText}" is not NAMESPACE:NAME of a ServiceAccount (example: neverpull-system:neverpull-guard-agent)`,
    }
  }
  // An empty variable (a template that rendered nothing) is unset, never "no registry".
  const registriesText = values['pullable-registries'] ?? (env['NEVERPULL_PULLABLE_REGISTRIES'] || '*')
  const pullable = parsePullableRegistries(registriesText)
  if (!pullable.ok) return { ok: false, error: `--pullable-registries: ${pullable.error}` }
  const candidate: Record<string, unknown> = {
    port: integer(values.port ?? env['NEVERPULL_PORT']) ?? 8443,
    host: values.host ?? env['NEVERPULL_HOST'] ?? (dev ? '127.0.0.1' : '0.0.0.0'),
    metricsPort: integer(values['metrics-port'] ?? env['NEVERPULL_METRICS_PORT']) ?? (dev ? 0 : 9090),
    tlsCert: values['tls-cert'] ?? env['NEVERPULL_TLS_CERT'] ?? (dev ? 'certs/tls.crt' : '/etc/neverpull/tls/tls.crt'),
    tlsKey: values['tls-key'] ?? env['NEVERPULL_TLS_KEY'] ?? (dev ? 'certs/tls.key' : '/etc/neverpull/tls/tls.key'),
    mode: values.mode ?? env['NEVERPULL_MODE'] ?? 'enforce',
    staleAfterMs: ms[0],
    shutdownDelayMs: ms[1],
    logLevel: values['log-level'] ?? env['NEVERPULL_LOG_LEVEL'] ?? 'info',
    agentServiceAccount,
    auditIntervalMs: ms[2],
    // The downward API sets these in the cluster; a local run is its own replica.
    podName: env['POD_NAME'] ?? `${hostname()}-${process.pid}`,
    podNamespace: env['POD_NAMESPACE'] ?? 'neverpull-system',
    dev,
    pullableRegistries: pullable.value,
  }
  const inventoryFile = values['inventory-file'] ?? env['NEVERPULL_INVENTORY_FILE'] ?? (dev ? 'examples/inventory.yaml' : undefined)
  if (inventoryFile !== undefined) candidate['inventoryFile'] = inventoryFile
  // Without the flag, $KUBECONFIG (all its files, merged as kubectl does), ~/.kube/config
  // or the pod's service account: src/kube/config.ts.
  if (values.kubeconfig !== undefined) candidate['kubeconfig'] = values.kubeconfig
  if (!validate(candidate)) {
    const messages = (validate.errors ?? []).map((e) => {
      const field = e.instancePath.slice(1)
      const flag = `--${field.replace(/Ms$/, '').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
      const allowed = e.keyword === 'enum' ? ` (one of ${(e.params['allowedValues'] as string[]).join(', ')})` : ''
      return `${flag} ${JSON.stringify(candidate[field])}: ${e.message ?? 'invalid'}${allowed}`
    })
    return { ok: false, error: messages.join('; ') }
  }
  return { ok: true, config: candidate as unknown as WebhookConfig }
}
