import { durationValue, integerValue, parseFlags, usage, UsageError, type CommandSpec } from '../util/flags.js'
import { connectKube } from '../kube/connect.js'
import { pino } from 'pino'
import { createAgent, DEFAULT_HEARTBEAT_MS, DEFAULT_INTERVAL_MS } from './agent.js'
import { connectCri, normalizeEndpoint, probeEndpoint, type CriClient } from './cri.js'
import { connectContainerd, type ContainerdClient } from './containerd.js'
import {
  DEFAULT_ALIAS_CACHE,
  DEFAULT_REGISTRIES_CONF,
  DEFAULT_REGISTRIES_CONF_DIR,
  type RegistriesConfPaths,
} from './registries-conf.js'
import { nodeStatFs, readImageFilesystem, type StatFs } from './imagefs.js'
import { createHttpPublisher, type Publisher } from './publish.js'
import type { Logger } from '../util/logger.js'
import type { SignalSource } from '../util/signals.js'
import type { AgentMetrics, MetricsServer } from './metrics.js'
import { errorMessage } from '../util/guards.js'
import { isDns1123Subdomain } from '../util/dns-name.js'

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const
type LogLevel = (typeof LOG_LEVELS)[number]

export const AGENT_COMMAND: CommandSpec = {
  name: 'neverpull-guard agent',
  description:
    "Lists this node's images through the container runtime (CRI) and publishes them as the\nNodeImageSet named after the node.",
  flags: [
    { name: 'node-name', value: 'NAME', env: 'NODE_NAME', help: "this node's name (set NODE_NAME from spec.nodeName)" },
    {
      name: 'cri-endpoint',
      value: 'URL',
      help: 'CRI socket, unix:///path or a path (default: the first of containerd, CRI-O, cri-dockerd sockets that exists)',
    },
    {
      name: 'kubeconfig',
      value: 'FILE',
      help: 'kubeconfig (default: in-cluster service account, else ~/.kube/config)',
    },
    {
      name: 'service-account-dir',
      value: 'DIR',
      help: 'in a cluster: where the token and ca.crt are mounted',
      default: '/var/run/secrets/kubernetes.io/serviceaccount',
    },
    { name: 'interval', value: 'DURATION', help: 'how often to list images, e.g. 500ms, 10s, 5m', default: '10s' },
    { name: 'heartbeat', value: 'DURATION', help: 'refresh status.observedTime at least this often', default: '5m' },
    {
      name: 'metrics-port',
      value: 'N',
      help: 'serve Prometheus metrics on GET /metrics, plain HTTP on all addresses; 0 = off (the DaemonSet uses 9090)',
      default: '0',
    },
    { name: 'log-level', value: 'LEVEL', help: 'log level', choices: LOG_LEVELS, default: 'info' },
    {
      name: 'registries-conf',
      value: 'FILE',
      help: "CRI-O nodes: the registries.conf CRI-O resolves short names with (the host's, mounted read-only)",
      default: DEFAULT_REGISTRIES_CONF,
    },
    {
      name: 'registries-conf-dir',
      value: 'DIR',
      help: 'CRI-O nodes: its registries.conf.d drop-in directory',
      default: DEFAULT_REGISTRIES_CONF_DIR,
    },
    {
      name: 'host-root',
      value: 'DIR',
      help: "where the node's directories are mounted, to size the runtime's image filesystem (statfs)",
      default: '/',
    },
  ],
}

export const AGENT_USAGE = usage(AGENT_COMMAND)

const MIN_INTERVAL_MS = 100

export { UsageError }

export interface AgentConfig {
  nodeName: string
  /** Undefined: probe the well-known sockets. */
  criEndpoint: string | undefined
  kubeconfig: string | undefined
  /** Undefined: the standard projected service-account volume. */
  serviceAccountDir: string | undefined
  intervalMs: number
  heartbeatMs: number
  /** 0: no metrics listener. */
  metricsPort: number
  logLevel: LogLevel
  /** CRI-O nodes: where registries.conf and its drop-ins are read from. */
  registriesConf?: RegistriesConfPaths
  /** The node's `/` in the agent's container: the image filesystem's mountpoint is looked up below it. */
  hostRoot: string
}

/** Flags and environment to a validated config; `'help'` when help was asked for. */
export function parseAgentArgs(argv: string[], env: NodeJS.ProcessEnv): AgentConfig | 'help' {
  const flags = parseFlags(AGENT_COMMAND, argv, env)
  if (flags.help) return 'help'

  const nodeName = flags.string('node-name') ?? ''
  if (nodeName === '') {
    throw new UsageError(
      '--node-name is required (or set NODE_NAME, e.g. from the downward API fieldRef spec.nodeName)',
    )
  }
  // What the apiserver accepts as a Node name: an RFC 1123 subdomain.
  if (!isDns1123Subdomain(nodeName)) {
    throw new UsageError(`node name "${nodeName}" is not a valid Kubernetes node name (lowercase RFC 1123 subdomain)`)
  }

  const interval = flags.string('interval')
  const intervalMs = interval === undefined ? DEFAULT_INTERVAL_MS : durationValue(interval, '--interval')
  if (intervalMs < MIN_INTERVAL_MS)
    throw new UsageError(`--interval ${interval} is too short: at least ${MIN_INTERVAL_MS}ms`)
  const heartbeat = flags.string('heartbeat')
  const heartbeatMs = heartbeat === undefined ? DEFAULT_HEARTBEAT_MS : durationValue(heartbeat, '--heartbeat')
  if (heartbeatMs < intervalMs) {
    throw new UsageError(`--heartbeat (${heartbeatMs}ms) must not be shorter than --interval (${intervalMs}ms)`)
  }

  const metricsPortText = flags.string('metrics-port')
  const metricsPort = metricsPortText === undefined ? 0 : integerValue(metricsPortText, '--metrics-port', 0, 65535)

  const logLevel = (flags.string('log-level') ?? 'info') as LogLevel

  let criEndpoint = flags.string('cri-endpoint')
  if (criEndpoint !== undefined) {
    try {
      criEndpoint = normalizeEndpoint(criEndpoint)
    } catch (err) {
      throw new UsageError(`--cri-endpoint: ${errorMessage(err)}`)
    }
  }

  return {
    nodeName,
    criEndpoint,
    kubeconfig: flags.string('kubeconfig'),
    serviceAccountDir: flags.string('service-account-dir'),
    intervalMs,
    heartbeatMs,
    metricsPort,
    logLevel,
    registriesConf: {
      path: flags.string('registries-conf') ?? DEFAULT_REGISTRIES_CONF,
      dir: flags.string('registries-conf-dir') ?? DEFAULT_REGISTRIES_CONF_DIR,
      aliasCache: DEFAULT_ALIAS_CACHE,
    },
    hostRoot: flags.string('host-root') ?? '/',
  }
}

/** Seams for tests; production uses the defaults. */
export interface AgentCommandDeps {
  stdout: (text: string) => void
  stderr: (text: string) => void
  signals: SignalSource
  logger: (level: LogLevel, nodeName: string) => Logger
  probe: () => Promise<string>
  connect: (endpoint: string) => CriClient
  /** containerd's own API on the CRI socket, for images outside k8s.io. */
  containerd: (endpoint: string) => ContainerdClient
  statFs: StatFs
  publisher: (config: AgentConfig, env: NodeJS.ProcessEnv) => Promise<Publisher>
  /** Called with the metrics listener's URL once it listens (tests scrape it). */
  onMetrics?: (url: string) => void
}

/**
 * In a pod without --kubeconfig: the service account, without loading client-node (whose
 * import alone would cost more memory than the agent's budget). Otherwise the kubeconfig.
 */
async function defaultPublisher(config: AgentConfig, env: NodeJS.ProcessEnv): Promise<Publisher> {
  const http = await connectKube({ kubeconfig: config.kubeconfig, serviceAccountDir: config.serviceAccountDir }, env)
  return createHttpPublisher(http, { nodeName: config.nodeName })
}

const defaultDeps: AgentCommandDeps = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  signals: process,
  logger: (level, nodeName) => pino({ level, base: { component: 'agent', node: nodeName } }),
  probe: () => probeEndpoint(),
  connect: (endpoint) => connectCri(endpoint),
  containerd: (endpoint) => connectContainerd(endpoint),
  statFs: nodeStatFs,
  publisher: defaultPublisher,
}

/** `neverpull-guard agent`: 0 after SIGTERM/SIGINT, 1 when it cannot start, 2 for bad flags. */
export async function runAgent(
  argv: string[],
  env: NodeJS.ProcessEnv,
  deps: Partial<AgentCommandDeps> = {},
): Promise<number> {
  const d: AgentCommandDeps = { ...defaultDeps, ...deps }

  let config: AgentConfig | 'help'
  try {
    config = parseAgentArgs(argv, env)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    d.stderr(`neverpull-guard agent: ${err.message}\nRun "neverpull-guard agent --help" for usage.\n`)
    return 2
  }
  if (config === 'help') {
    d.stdout(AGENT_USAGE)
    return 0
  }

  const log = d.logger(config.logLevel, config.nodeName)
  let cri: CriClient | undefined
  let containerd: ContainerdClient | undefined
  let publisher: Publisher
  let metrics: AgentMetrics | undefined
  let metricsServer: MetricsServer | undefined
  try {
    const endpoint = config.criEndpoint ?? (await d.probe())
    cri = d.connect(endpoint)
    containerd = d.containerd(endpoint)
    publisher = await d.publisher(config, env)
    if (config.metricsPort !== 0) {
      // Loaded only when asked for: prom-client is memory the agent without metrics keeps.
      const { createAgentMetrics, serveAgentMetrics } = await import('./metrics.js')
      metrics = createAgentMetrics()
      try {
        metricsServer = await serveAgentMetrics(metrics.registry, config.metricsPort)
      } catch (err) {
        throw new Error(`cannot serve metrics on port ${config.metricsPort}: ${errorMessage(err)}`, { cause: err })
      }
      d.onMetrics?.(metricsServer.url)
    }
    log.info(
      { endpoint, intervalMs: config.intervalMs, heartbeatMs: config.heartbeatMs, metrics: metricsServer?.url },
      'agent starting',
    )
  } catch (err) {
    cri?.close()
    containerd?.close()
    const message = errorMessage(err)
    log.error({ err: message }, 'agent cannot start')
    d.stderr(`neverpull-guard agent: ${message}\n`)
    return 1
  }

  const agent = createAgent({
    nodeName: config.nodeName,
    cri,
    containerd,
    imageFilesystem: () => readImageFilesystem(cri, d.statFs, config.hostRoot),
    publisher,
    logger: log,
    intervalMs: config.intervalMs,
    heartbeatMs: config.heartbeatMs,
    ...(config.registriesConf === undefined ? {} : { registriesConf: config.registriesConf }),
    ...(metrics !== undefined ? { observer: metrics } : {}),
  })
  const onSignal = () => {
    log.info({}, 'stopping after the current iteration')
    void agent.stop()
  }
  d.signals.once('SIGTERM', onSignal)
  d.signals.once('SIGINT', onSignal)
  try {
    await agent.run()
  } finally {
    d.signals.removeListener('SIGTERM', onSignal)
    d.signals.removeListener('SIGINT', onSignal)
    cri.close()
    containerd.close()
    await metricsServer?.close()
  }
  log.info({}, 'agent stopped')
  return 0
}
