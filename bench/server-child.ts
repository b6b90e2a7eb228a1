import Fastify from 'fastify'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadCluster, type ClusterSpec } from './inventory.js'
import { localWebhookArgs } from '../test/helpers/webhook-args.js'
import type * as WebhookModule from '../src/config/webhook.js'
import type * as ServerModule from '../src/server/server.js'
import type * as AppModule from '../src/server/app.js'

// The webhook is the compiled dist/ that ships (npm run bench builds it first), not src/
// through tsx, whose transform adds work of its own (esbuild's __name helper on every
// function) that a cluster never runs. This file itself runs compiled too (bench/load.ts),
// without tsx, whose loader thread is a second V8 isolate: 33 MiB of RSS the webhook does
// not have. `dist` comes from the parent, since the compiled file lives elsewhere.
const args = JSON.parse(process.argv[2] ?? '{}') as ChildArgs
const compiled = (path: string): string => new URL(path, args.dist ?? new URL('../dist/', import.meta.url)).href
const { webhookConfig } = (await import(compiled('config/webhook.js'))) as typeof WebhookModule
const { KEEP_ALIVE_MS, logDestination, startWebhook, TLS_OPTIONS } = (await import(
  compiled('server/server.js')
)) as typeof ServerModule
const { MAX_REVIEW_BYTES } = (await import(compiled('server/app.js'))) as typeof AppModule

// One server per child process, so that on a 2-core machine the server has a core to itself
// and autocannon (in the parent) the other, for both servers alike.
//   baseline: bare Fastify over HTTPS, same TLS options and certificates, 7 MiB body limit,
//             parses the AdmissionReview and answers allowed.
//   guard:    the real startWebhook (logger at info into /dev/null, metrics, TLS reload
//             watcher), then the synthetic cluster loaded into the index it returns.
// The parent asks for process.cpuUsage() over IPC around each load run.

export interface ChildArgs {
  kind: 'baseline' | 'guard'
  /** URL of the compiled webhook's dist/ directory, with a trailing slash. */
  dist?: string
  certDir: string
  cluster?: ClusterSpec
  logLevel?: string
  /**
   * Baseline only: spin this many µs in the handler before answering. The calibration: what
   * a handler doing that much work (with no memory of its own) costs a server on this machine.
   */
  workUs?: number
}

export interface ChildReady {
  type: 'ready'
  url: string
  /** Heap and RSS after gc, before and after the inventory was loaded (guard only). */
  memory?: {
    heapBefore: number
    heapAfter: number
    rssBefore: number
    rssAfter: number
    loadMs: number
    nodes: number
    imageSets: number
  }
}

export interface ChildUsage {
  type: 'usage'
  id: number
  cpu: NodeJS.CpuUsage
  rss: number
  heapUsed: number
}

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect === undefined) throw new Error('run with --expose-gc')
  for (let i = 0; i < 3; i++) collect()
}

async function baseline(certDir: string, workUs = 0): Promise<{ url: string; close: () => Promise<void> }> {
  const [cert, key] = await Promise.all([
    readFile(join(certDir, 'tls.crt'), 'utf8'),
    readFile(join(certDir, 'tls.key'), 'utf8'),
  ])
  const app = Fastify({ https: { cert, key, ...TLS_OPTIONS }, logger: false, keepAliveTimeout: KEEP_ALIVE_MS })
  app.post('/validate', { bodyLimit: MAX_REVIEW_BYTES }, (request) => {
    const body = request.body as { apiVersion?: string; kind?: string; request?: { uid?: string } }
    if (workUs > 0) {
      const until = performance.now() + workUs / 1000
      while (performance.now() < until);
    }
    // A promise, as the webhook's async route returns one.
    return Promise.resolve({
      apiVersion: body.apiVersion,
      kind: body.kind,
      response: { uid: body.request?.uid, allowed: true },
    })
  })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { url, close: () => app.close() }
}

async function guard(
  args: ChildArgs,
): Promise<{ url: string; memory: NonNullable<ChildReady['memory']>; close: () => Promise<void> }> {
  const empty = join(args.certDir, 'empty-inventory.yaml')
  await writeFile(empty, 'apiVersion: v1\nkind: List\nitems: []\n')
  const parsed = webhookConfig(
    localWebhookArgs({
      tls: { cert: join(args.certDir, 'tls.crt'), key: join(args.certDir, 'tls.key') },
      inventoryFile: empty,
      args: ['--mode', 'enforce'],
      logLevel: args.logLevel,
    }),
    {},
  )
  if (!parsed.ok) throw new Error(parsed.error)
  // The destination the webhook builds for stdout (asynchronous), on /dev/null. pino takes a
  // SonicBoom as it is (its type is not a Writable).
  const logStream = logDestination('/dev/null') as unknown as NodeJS.WritableStream
  const running = await startWebhook(parsed.config, { logStream })
  gc()
  const before = process.memoryUsage()
  const started = performance.now()
  if (args.cluster !== undefined) loadCluster(running.inventory, args.cluster, Date.now())
  const loadMs = performance.now() - started
  gc()
  const after = process.memoryUsage()
  return {
    url: running.url,
    memory: {
      heapBefore: before.heapUsed,
      heapAfter: after.heapUsed,
      rssBefore: before.rss,
      rssAfter: after.rss,
      loadMs,
      nodes: running.inventory.nodeCount,
      imageSets: running.inventory.imageSetCount,
    },
    close: () => running.shutdown(),
  }
}

async function main(): Promise<void> {
  const send = (m: unknown): void => {
    process.send?.(m)
  }
  const server: { url: string; memory?: ChildReady['memory']; close: () => Promise<void> } =
    args.kind === 'baseline' ? await baseline(args.certDir, args.workUs) : await guard(args)
  process.on('message', (m: { type: string; id: number }) => {
    if (m.type === 'usage') {
      const mem = process.memoryUsage()
      send({
        type: 'usage',
        id: m.id,
        cpu: process.cpuUsage(),
        rss: mem.rss,
        heapUsed: mem.heapUsed,
      } satisfies ChildUsage)
    } else if (m.type === 'stop') {
      void server.close().then(() => process.exit(0))
    }
  })
  const ready: ChildReady = { type: 'ready', url: server.url }
  if (server.memory !== undefined) ready.memory = server.memory
  send(ready)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
