import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import type { Counter as CounterClass, Gauge as GaugeClass, Registry as RegistryClass } from 'prom-client'
import type { AgentObserver, PublishedObject } from './agent.js'
import { errorMessage } from '../util/guards.js'

// prom-client's classes one by one: its index also loads the default process metrics, the
// Pushgateway, the cluster aggregator and, through them, @opentelemetry/api, which together
// cost the agent about 2.5 MiB of resident memory it would never use (0.3 MiB this way).
const require = createRequire(import.meta.url)
const Registry = require('prom-client/lib/registry') as typeof RegistryClass
const Gauge = require('prom-client/lib/gauge') as typeof GaugeClass
const Counter = require('prom-client/lib/counter') as typeof CounterClass
type Registry = RegistryClass
type Gauge = GaugeClass

// The agent's own metrics, for the PodMonitor in manifests/components/monitoring. No node
// label: Prometheus adds the pod's node when it scrapes (the PodMonitor relabels
// __meta_kubernetes_pod_node_name), as it does for the kubelet. No process metrics either:
// the kubelet's cAdvisor already reports the container's memory and CPU, and prom-client's
// event-loop monitor would wake an otherwise idle agent a hundred times a second.

export interface AgentMetrics extends AgentObserver {
  readonly registry: Registry
}

export function createAgentMetrics(): AgentMetrics {
  const registry = new Registry()
  // Gauges are registered with their first value: an unlabelled gauge reads 0 from birth,
  // which would say "unreachable", "no images" or "last published in 1970" before the agent
  // has asked or published anything.
  const lazy = (name: string, help: string): { set(value: number): void } => {
    let gauge: Gauge | undefined
    return {
      set(value) {
        gauge ??= new Gauge({ name, help, registers: [registry] })
        gauge.set(value)
      },
    }
  }
  const reachable = lazy(
    'neverpull_agent_runtime_reachable',
    '1 when the last attempt to list images from the container runtime (CRI) succeeded, 0 when it failed',
  )
  const runtimeErrors = new Counter({
    name: 'neverpull_agent_runtime_errors_total',
    help: 'Attempts to list images from the container runtime that failed',
    registers: [registry],
  })
  const images = lazy('neverpull_agent_images', 'Images the container runtime listed at the last successful attempt')
  const publishes = new Counter({
    name: 'neverpull_agent_publishes_total',
    help: "Server-side applies of this node's NodeImageSet, by part (spec, status) and result (success, failure)",
    labelNames: ['object', 'result'] as const,
    registers: [registry],
  })
  for (const object of ['spec', 'status'] as const)
    for (const result of ['success', 'failure'] as const) publishes.inc({ object, result }, 0)
  const lastPublish = lazy(
    'neverpull_agent_last_publish_timestamp_seconds',
    "When this node's NodeImageSet (spec or status) was last applied successfully (seconds since the epoch)",
  )
  const elsewhere = lazy(
    'neverpull_agent_images_elsewhere',
    'Images this node holds in containerd namespaces other than k8s.io, where the kubelet does not look',
  )
  const imageFsUsed = lazy(
    'neverpull_agent_image_filesystem_used_percent',
    "The image filesystem's usage as the kubelet's image GC computes it (100 - available*100/capacity)",
  )
  return {
    registry,
    nodeFacts(imagesElsewhere, imageFsUsedPercent) {
      if (imagesElsewhere !== undefined) elsewhere.set(imagesElsewhere)
      if (imageFsUsedPercent !== undefined) imageFsUsed.set(imageFsUsedPercent)
    },
    runtimeListed(count) {
      reachable.set(1)
      images.set(count)
    },
    runtimeFailed() {
      reachable.set(0)
      runtimeErrors.inc()
    },
    published(object: PublishedObject, ok: boolean, at: number) {
      publishes.inc({ object, result: ok ? 'success' : 'failure' })
      if (ok) lastPublish.set(at / 1000)
    },
  }
}

export interface MetricsServer {
  /** Where it listens, e.g. `http://0.0.0.0:9090`. */
  readonly url: string
  close(): Promise<void>
}

/**
 * GET /metrics (and /healthz) on a plain-HTTP port, with node:http: Fastify would cost the
 * agent more memory than everything it serves here.
 */
export async function serveAgentMetrics(registry: Registry, port: number, host = '0.0.0.0'): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n')
      return
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) =>
          res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${errorMessage(err)}\n`),
      )
      return
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n')
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the agent serves GET /metrics and /healthz\n')
  })
  // Scrapes are short; do not hold idle connections in a process this small.
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    url: `http://${shownHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
