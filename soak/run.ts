import { spawn } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import { parseArgs } from 'node:util'
import type { NodeFacts, NodeImages, RuntimeImage } from '../src/api/types.js'
import { startLocalWebhook } from '../test/helpers/local-webhook.js'

// npm run soak [-- --minutes N]
// The real webhook (startWebhook, HTTPS, example inventory, started as the tests start it)
// under mixed load from a separate
// process, while its inventory churns the way a cluster's does: NodeImageSets republished
// with new builds, nodes relabelled, tainted, cordoned, removed, autoscaled away and replaced
// under new names. Every 10 s: heap after a full GC, RSS, active handles. The verdict:
//   - heap growth after warm-up at most HEAP_BOUND_MIB;
//   - active handles after warm-up within HANDLES_BOUND of each other;
//   - no failed request.

const HEAP_BOUND_MIB = 10
const HANDLES_BOUND = 4
const SAMPLE_MS = 10_000
const CHURN_MS = 300
const CONCURRENCY = 8
const MiB = 1024 * 1024

const { values } = parseArgs({ options: { minutes: { type: 'string' }, help: { type: 'boolean', short: 'h' } } })
if (values.help === true) {
  process.stdout.write('Usage: npm run soak -- [--minutes N]   (default 10)\n')
  process.exit(0)
}
const minutes = values.minutes === undefined ? 10 : Number(values.minutes)
if (!(minutes > 0)) {
  process.stderr.write(`--minutes: "${values.minutes}" is not a positive number\n`)
  process.exit(2)
}
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) {
  process.stderr.write('run with --expose-gc (npm run soak does)\n')
  process.exit(2)
}
const durationMs = minutes * 60_000
const warmUpMs = Math.max(SAMPLE_MS, Math.min(60_000, durationMs * 0.2))

// The admission log lines are written (pino's cost is part of the soak) and dropped.
let logLines = 0
const logStream = new Writable({
  write(_c, _e, cb) {
    logLines++
    cb()
  },
})
const webhook = await startLocalWebhook({ logLevel: 'info', logStream })
const url = webhook.url
const inventory = webhook.running.inventory

// ---- inventory churn ----

let build = 0
let autoscaled = 0
const churn = { upsertImages: 0, removeImages: 0, upsertNode: 0, removeNode: 0, autoscale: 0, namespace: 0 }
const random = (n: number): number => Math.floor(Math.random() * n)
const pick = <T>(xs: readonly T[]): T => xs[random(xs.length)]!
const BASE = [
  'docker.io/library/nginx:1.27',
  'docker.io/library/busybox:1.36',
  'registry.local:5000/team/api:1.4.0',
  'docker.io/library/postgres:16',
]

function images(name: string): NodeImages {
  const list: RuntimeImage[] = []
  for (const tag of BASE) if (Math.random() < 0.7) list.push(image(tag))
  // A CI cluster: new builds land, old ones are garbage-collected.
  for (let i = 0; i < 5; i++) list.push(image(`registry.local:5000/ci/app:build-${build - random(50)}`))
  build++
  return {
    nodeName: name,
    runtime: { name: 'containerd', version: '1.7.22', endpoint: 'unix:///run/containerd/containerd.sock' },
    images: list,
    observedAt: Date.now(),
  }
}

function image(ref: string): RuntimeImage {
  const hex = Buffer.from(ref).toString('hex').padEnd(64, '0').slice(0, 64)
  return { id: `sha256:${hex}`, repoTags: [ref], repoDigests: [], size: 1000, pinned: false }
}

function node(name: string): NodeFacts {
  // Tainted, so the example reviews' decisions do not depend on which churn nodes exist.
  return {
    name,
    labels: {
      'kubernetes.io/hostname': name,
      zone: pick(['a', 'b', 'c']),
      pool: pick(['x', 'y']),
      'node.kubernetes.io/instance-type': pick(['m5.large', 'm5.xlarge']),
    },
    taints: [{ key: 'churn', value: pick(['1', '2']), effect: pick(['NoSchedule', 'NoExecute'] as const) }],
    unschedulable: Math.random() < 0.1,
    ready: true,
    statusImageNames: Math.random() < 0.5 ? [`registry.local:5000/ci/app:build-${build}`] : [],
  }
}

const autoNodes: string[] = []
const churner = setInterval(() => {
  const fixed = `churn-${random(20)}`
  switch (random(6)) {
    case 0:
      inventory.upsertImages(images(fixed))
      churn.upsertImages++
      break
    case 1:
      inventory.removeImages(fixed)
      churn.removeImages++
      break
    case 2:
      inventory.upsertNode(node(fixed))
      churn.upsertNode++
      break
    case 3:
      inventory.removeNode(fixed)
      churn.removeNode++
      break
    case 4: {
      // Autoscaling: a node goes away and a new one joins under a name never seen before.
      const name = `auto-${(autoscaled++).toString(36)}`
      inventory.upsertNode(node(name))
      inventory.upsertImages(images(name))
      autoNodes.push(name)
      if (autoNodes.length > 10) {
        const gone = autoNodes.shift()!
        inventory.removeImages(gone)
        inventory.removeNode(gone)
      }
      churn.autoscale++
      break
    }
    default:
      inventory.setNamespaceMode(`team-${random(10)}`, pick(['enforce', 'warn', 'audit', undefined]))
      churn.namespace++
  }
}, CHURN_MS)

// ---- load ----

let load: Record<string, unknown> = {}
const child = spawn(process.execPath, ['--import', 'tsx', 'soak/load.ts'], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: {
    ...process.env,
    NODE_OPTIONS: '',
    SOAK_URL: url,
    SOAK_CA: webhook.caFile,
    SOAK_SECONDS: String(durationMs / 1000),
    SOAK_CONCURRENCY: String(CONCURRENCY),
  },
})
createInterface({ input: child.stdout }).on('line', (line) => {
  try {
    load = JSON.parse(line) as Record<string, unknown>
  } catch {
    // not a counter line
  }
})
const loadDone = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
const stopAll = async (): Promise<void> => {
  clearInterval(churner)
  if (child.exitCode === null) child.kill('SIGKILL')
  await webhook.close()
}
process.once('SIGINT', () => void stopAll().then(() => process.exit(130)))

// ---- sampling ----

interface Sample {
  t: number
  heapMiB: number
  rssMiB: number
  externalMiB: number
  handles: number
  requests: number
  failed: number
  nodes: number
  imageSets: number
  hostnameValues: number
}
const samples: Sample[] = []
const started = Date.now()
function sample(): Sample {
  gc!()
  const m = process.memoryUsage()
  const s: Sample = {
    t: Math.round((Date.now() - started) / 1000),
    heapMiB: m.heapUsed / MiB,
    rssMiB: m.rss / MiB,
    externalMiB: (m.external + m.arrayBuffers) / MiB,
    handles: process.getActiveResourcesInfo().length,
    requests: Number(load['sent'] ?? 0),
    failed: Number(load['failed'] ?? 0),
    nodes: inventory.nodeCount,
    imageSets: inventory.imageSetCount,
    // Every hostname value the index still holds: grows if removed nodes are not forgotten.
    hostnameValues: inventory.labelValues('kubernetes.io/hostname')?.size ?? 0,
  }
  samples.push(s)
  return s
}

const header = '    t  heap MiB   RSS MiB  ext MiB  handles  requests  failed  nodes  sets  hostname values'
const row = (s: Sample): string =>
  `${String(s.t).padStart(5)}  ${s.heapMiB.toFixed(1).padStart(8)}  ${s.rssMiB.toFixed(1).padStart(8)}  ${s.externalMiB.toFixed(1).padStart(7)}  ${String(s.handles).padStart(7)}  ${String(s.requests).padStart(8)}  ${String(s.failed).padStart(6)}  ${String(s.nodes).padStart(5)}  ${String(s.imageSets).padStart(4)}  ${String(s.hostnameValues).padStart(15)}`

process.stdout.write(
  `neverpull-guard soak: ${minutes} min against ${url}, ${CONCURRENCY} keep-alive connections, inventory churn every ${CHURN_MS} ms, warm-up ${warmUpMs / 1000} s\n\n${header}\n`,
)
process.stdout.write(row(sample()) + '\n')
const sampler = setInterval(() => process.stdout.write(row(sample()) + '\n'), SAMPLE_MS)
const loadExit = await loadDone
clearInterval(sampler)
clearInterval(churner)

// ---- verdict ----

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? Number.NaN : (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2
}
const after = samples.filter((s) => s.t * 1000 >= warmUpMs)
const first = after.slice(0, 3)
const last = after.slice(-3)
const heapGrowth = median(last.map((s) => s.heapMiB)) - median(first.map((s) => s.heapMiB))
const rssGrowth = median(last.map((s) => s.rssMiB)) - median(first.map((s) => s.rssMiB))
const handles = after.map((s) => s.handles)
const handleSpread = Math.max(...handles) - Math.min(...handles)
// Least-squares slope of the heap over time after warm-up, MiB per minute.
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
const tx = after.map((s) => s.t / 60)
const hy = after.map((s) => s.heapMiB)
const mt = mean(tx)
const mh = mean(hy)
const slope = tx.reduce((a, t, i) => a + (t - mt) * (hy[i]! - mh), 0) / tx.reduce((a, t) => a + (t - mt) ** 2, 0)
const failed = Number(load['failed'] ?? 0)
const checks = [
  {
    name: `heap growth after warm-up ≤ ${HEAP_BOUND_MIB} MiB`,
    ok: after.length >= 2 && heapGrowth <= HEAP_BOUND_MIB,
    value: `${heapGrowth.toFixed(2)} MiB (slope ${slope.toFixed(3)} MiB/min)`,
  },
  {
    name: `active handles after warm-up within ±${HANDLES_BOUND}`,
    ok: handleSpread <= HANDLES_BOUND,
    value: `${Math.min(...handles)}..${Math.max(...handles)}`,
  },
  {
    name: 'no failed request',
    ok: failed === 0 && loadExit === 0,
    value: `${failed} of ${String(load['sent'])} (load exit ${loadExit})`,
  },
]
const pass = checks.every((c) => c.ok)
process.stdout.write(
  `\nrequests ${String(load['sent'])} (${String(load['ok'])} ok: ${String(load['allowed'])} allowed, ${String(load['warned'])} warned, ${String(load['denied'])} denied), failed ${failed}${failed > 0 ? ` ${JSON.stringify(load['errors'])}` : ''}, slowest ${Number(load['maxMs']).toFixed(0)} ms, ${((Number(load['sent']) / durationMs) * 1000).toFixed(0)} req/s\n`,
)
process.stdout.write(`inventory churn ${JSON.stringify(churn)}; ${logLines} log lines\n`)
process.stdout.write(
  `RSS growth after warm-up ${rssGrowth.toFixed(1)} MiB (reported, not judged: the allocator keeps freed pages)\n`,
)
const end = samples[samples.length - 1]!
if (end.hostnameValues > end.nodes) {
  process.stdout.write(
    `WARN  the index holds ${end.hostnameValues} kubernetes.io/hostname values for ${end.nodes} live nodes: label values of removed nodes are never forgotten (test/fuzz/inventory-churn.test.ts, todo)\n`,
  )
}
process.stdout.write('\n')
for (const c of checks) process.stdout.write(`${c.ok ? 'PASS' : 'FAIL'}  ${c.name}: ${c.value}\n`)
process.stdout.write(`\nverdict: ${pass ? 'PASS' : 'FAIL'}\n`)

const stamp = new Date(started).toISOString().replace(/[:.]/g, '-')
const resultsDir = new URL('./results/', import.meta.url)
await mkdir(resultsDir, { recursive: true })
const file = new URL(`${stamp}.json`, resultsDir)
await writeFile(
  file,
  JSON.stringify(
    {
      started: new Date(started).toISOString(),
      minutes,
      node: process.version,
      bounds: { heapGrowthMiB: HEAP_BOUND_MIB, handleSpread: HANDLES_BOUND, warmUpSeconds: warmUpMs / 1000 },
      load,
      churn,
      samples,
      heapGrowthMiB: heapGrowth,
      heapSlopeMiBPerMin: slope,
      rssGrowthMiB: rssGrowth,
      handles: { min: Math.min(...handles), max: Math.max(...handles) },
      checks,
      verdict: pass ? 'pass' : 'fail',
    },
    null,
    2,
  ) + '\n',
)
process.stdout.write(`figures: ${file.pathname}\n`)
await stopAll()
process.exitCode = pass ? 0 : 1
