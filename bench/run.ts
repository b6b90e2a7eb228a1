import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, release, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { localCertificates } from '../test/helpers/local-webhook.js'
import { bodyNamed, loadBodies, type Body } from './bodies.js'
import type { ClusterSpec } from './inventory.js'
import { rounds, review, run, startServer, type RunResult, type Server } from './load.js'
import { buildIndex, decideBench, updateBench, type DecideResult, type UpdateResult } from './micro.js'
import { agentIdleBench, type AgentIdleResult } from './agent.js'
import { webhookIdleBench, type IdleResult } from './idle.js'

// npm run bench [-- --quick]
// Micro-benchmarks in this process, then load rounds against server children: the bare
// Fastify HTTPS baseline and neverpull-guard with 1,000 x 200, 5,000 x 200 and 5,000 x 1,000
// inventories, on allowed, warned and denied bodies.
// Prints every run, a summary with each target as PASS or MISS, and saves the JSON under
// bench/results/. Tests never time anything; this does, and only this.

const MiB = 1024 * 1024

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seconds: { type: 'string' },
    rounds: { type: 'string' },
    connections: { type: 'string', default: '10' },
  },
})
const quick = flags.quick === true
const log = (line: string): void => console.log(line)

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect === undefined) throw new Error('run with node --expose-gc (npm run bench does)')
  collect()
  collect()
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const verdict = (ok: boolean): 'PASS' | 'MISS' => (ok ? 'PASS' : 'MISS')

interface Phase {
  cluster: ClusterSpec
  memory: NonNullable<Awaited<ReturnType<typeof startServer>>['ready']['memory']>
  runs: RunResult[]
  bodies: BodySummary[]
}

interface BodySummary {
  body: string
  guard: { rps: number; p50: number; p99: number; p99_9: number; cpuUs: number }
  baseline: { rps: number; p50: number; p99: number; p99_9: number; cpuUs: number }
  /** Median over rounds of guard req/s / baseline req/s in the same round. */
  ratio: number
  /** Median over rounds of baseline CPU per request / guard CPU per request. */
  cpuRatio: number
}

function summarise(runs: RunResult[], bodies: Body[]): BodySummary[] {
  return bodies.map((b) => {
    const of = (server: string): RunResult[] => runs.filter((r) => r.body === b.name && r.server === server)
    const g = of('guard')
    const base = of('baseline')
    const side = (rs: RunResult[]) => ({
      rps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.latencyMs.p50)),
      p99: median(rs.map((r) => r.latencyMs.p99)),
      p99_9: median(rs.map((r) => r.latencyMs.p99_9)),
      cpuUs: median(rs.map((r) => r.serverCpuUs)),
    })
    const ratios = g.map((r) => r.rps / (base.find((x) => x.round === r.round)?.rps ?? Number.NaN))
    const cpuRatios = g.map((r) => (base.find((x) => x.round === r.round)?.serverCpuUs ?? Number.NaN) / r.serverCpuUs)
    return { body: b.name, guard: side(g), baseline: side(base), ratio: median(ratios), cpuRatio: median(cpuRatios) }
  })
}

async function checkBodies(server: Server, bodies: Body[]): Promise<void> {
  for (const b of bodies) {
    const r = await review(server.url, b.payload)
    const want = server.kind === 'baseline' || b.expect !== 'deny'
    if (r.status !== 200 || r.allowed !== want)
      throw new Error(
        `${server.kind} answered ${b.name} with ${r.status} allowed=${String(r.allowed)}, expected allowed=${want}`,
      )
    const warned = server.kind === 'guard' && b.expect === 'warn'
    if (warned !== r.warnings > 0 && server.kind === 'guard' && b.expect !== 'deny')
      throw new Error(`guard answered ${b.name} with ${r.warnings} warning(s), expected ${b.expect}`)
  }
}

async function loadPhase(
  certDir: string,
  baseline: Server,
  cluster: ClusterSpec,
  bodies: Body[],
  count: number,
  seconds: number,
  connections: number,
): Promise<Phase> {
  log(
    `\nload: neverpull-guard with ${cluster.nodes} nodes x ${cluster.imagesPerNode} images (${cluster.distinctImages} distinct) vs baseline, ${count} round(s) x ${bodies.length} bodies x 2 servers x ${seconds} s, ${connections} connections`,
  )
  const guard = await startServer({ kind: 'guard', certDir, cluster })
  const memory = guard.ready.memory!
  log(
    `  inventory loaded in ${(memory.loadMs / 1000).toFixed(1)} s: heap +${((memory.heapAfter - memory.heapBefore) / MiB).toFixed(1)} MiB, RSS ${(memory.rssAfter / MiB).toFixed(0)} MiB (after gc)`,
  )
  try {
    await checkBodies(guard, bodies)
    await checkBodies(baseline, bodies)
    const runs = await rounds([baseline, guard], bodies, count, { seconds, connections }, log)
    return { cluster, memory, runs, bodies: summarise(runs, bodies) }
  } finally {
    await guard.stop()
  }
}

interface Calibration {
  /** The plain baseline in the same rounds. */
  baseline: { rps: number; cpuUs: number }
  rows: Array<{
    body: string
    /** checkPodReview's warm median on that body at 1,000 nodes, spun by a bare server. */
    workUs: number
    rps: number
    cpuUs: number
    /** Median over rounds of its req/s over the plain baseline's in the same round. */
    ratio: number
    /** Server CPU per request added per µs of work: 1 if work cost only itself. */
    cpuPerWorkUs: number
  }>
}

/**
 * What a handler's work costs a whole server here: bare servers that spin, per request, as
 * long as checkPodReview takes on a body in a warm loop, against the plain baseline. The
 * spin touches no memory, so this is the least such work can cost; the guard's own work
 * also takes caches from the TLS and HTTP code around it.
 */
async function calibrate(
  certDir: string,
  baseline: Server,
  works: Array<{ body: string; workUs: number }>,
  body: Body,
  count: number,
  seconds: number,
  connections: number,
): Promise<Calibration> {
  log(
    `\ncalibration: the bare server spinning as long as checkPodReview takes (warm, 1,000 nodes), ${count} round(s) x ${seconds} s`,
  )
  const spinning = await Promise.all(works.map((w) => startServer({ kind: 'baseline', certDir, workUs: w.workUs })))
  try {
    const servers = [baseline, ...spinning]
    const rps: number[][] = servers.map(() => [])
    const cpu: number[][] = servers.map(() => [])
    for (let round = 1; round <= count; round++) {
      const order = servers.map((_, i) => i)
      if (round % 2 === 0) order.reverse()
      for (const i of order) {
        const r = await run(servers[i]!, body, round, { seconds, connections })
        rps[i]!.push(r.rps)
        cpu[i]!.push(r.serverCpuUs)
      }
    }
    const base = { rps: median(rps[0]!), cpuUs: median(cpu[0]!) }
    const rows = works.map((w, k) => {
      const i = k + 1
      const cpuUs = median(cpu[i]!)
      return {
        body: w.body,
        workUs: w.workUs,
        rps: median(rps[i]!),
        cpuUs,
        ratio: median(rps[i]!.map((x, round) => x / rps[0]![round]!)),
        cpuPerWorkUs: (cpuUs - base.cpuUs) / w.workUs,
      }
    })
    for (const r of rows)
      log(
        `  ${r.workUs.toFixed(1).padStart(5)} µs (${r.body.padEnd(26)}) ${r.rps.toFixed(0).padStart(6)} req/s, cpu ${r.cpuUs.toFixed(0)} vs ${base.cpuUs.toFixed(0)} µs/req: ratio ${r.ratio.toFixed(3)}, ${r.cpuPerWorkUs.toFixed(1)} µs of server CPU per µs of work`,
      )
    return { baseline: base, rows }
  } finally {
    await Promise.all(spinning.map((s) => s.stop()))
  }
}

async function main(): Promise<void> {
  const started = Date.now()
  const date = new Date(started)
  const cpu = cpus()
  const machine = {
    cpu: `${cpu.length} x ${cpu[0]?.model ?? 'unknown'}`,
    memoryGiB: Math.round(totalmem() / 1024 / MiB),
    kernel: release(),
    node: process.version,
    date: date.toISOString(),
  }
  log(`neverpull-guard bench${quick ? ' (--quick: small cluster, short runs; figures not comparable)' : ''}`)
  log(
    `machine: ${machine.cpu}, ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, ${machine.date}`,
  )

  const count = Number(flags.rounds ?? (quick ? 1 : 3))
  const seconds = Number(flags.seconds ?? (quick ? 2 : 5))
  const connections = Number(flags.connections)
  const thousand: ClusterSpec = { nodes: 1000, imagesPerNode: 200, distinctImages: 20_000 }
  const small: ClusterSpec = { nodes: 5000, imagesPerNode: 200, distinctImages: 20_000 }
  const large: ClusterSpec = { nodes: 5000, imagesPerNode: 1000, distinctImages: 100_000 }
  const clusters = quick ? [thousand] : [thousand, small, large]
  const updated = quick ? thousand : small
  const bodies = loadBodies()
  const micro = ['pod-3-never-nodeSelector', 'pod-warn-partial', 'pod-warn-20-containers', 'pod-deny-did-you-mean'].map(
    (n) => bodyNamed(bodies, n),
  )

  // ---- micro ----
  log('\ndecide() and checkPodReview per path: allowed, warned (3 and 20 containers), denied with "did you mean"')
  const decideResults: DecideResult[] = decideBench(
    quick ? [100, 1000] : [100, 1000, 5000],
    micro,
    quick ? 20_000 : 200_000,
    log,
  )
  gc()

  log(
    `\none node's NodeImageSet update (upsertImages, ${small.imagesPerNode} images replaced) on ${updated.nodes} x ${updated.imagesPerNode}`,
  )
  const loadStart = performance.now()
  const built = buildIndex(updated, Date.now())
  const loadMs = performance.now() - loadStart
  const update: UpdateResult = updateBench(built.index, built.layout, loadMs, quick ? 400 : 4000)
  log(
    `  median ${(update.update.medianUs / 1000).toFixed(3)} ms  p99 ${(update.update.p99Us / 1000).toFixed(3)} ms over ${update.update.n} updates (whole cluster loaded in ${(loadMs / 1000).toFixed(1)} s)`,
  )
  gc()

  // ---- load ----
  const certDir = join(tmpdir(), 'neverpull-bench-certs')
  await localCertificates(certDir, { now: date })
  log('\nwebhook at idle: the compiled CLI on an empty inventory')
  const idle: IdleResult = await webhookIdleBench(certDir, 3, log)
  const baseline = await startServer({ kind: 'baseline', certDir })
  const phases: Phase[] = []
  let calibration: Calibration | undefined
  try {
    for (const cluster of clusters) {
      // The 1,000-image cluster is the memory case: one round of each body is enough there.
      const heavy = cluster.imagesPerNode >= 1000
      phases.push(
        await loadPhase(
          certDir,
          baseline,
          cluster,
          bodies,
          heavy ? 1 : count,
          heavy ? Math.max(1, seconds - 2) : seconds,
          connections,
        ),
      )
    }
    const warm = decideResults.find((r) => r.nodes === 1000)
    if (warm !== undefined)
      calibration = await calibrate(
        certDir,
        baseline,
        warm.paths.map((p) => ({ body: p.body, workUs: p.handle.medianUs })),
        micro[0]!,
        count,
        seconds,
        connections,
      )
  } finally {
    await baseline.stop()
  }

  // ---- agent ----
  const agentImages = quick ? 100 : 1000
  log(`\nagent at idle: ${agentImages} images in a real containerd, the compiled agent as the DaemonSet runs it`)
  const agent: AgentIdleResult = await agentIdleBench(agentImages, quick ? 10 : 60, log)

  // ---- targets ----
  const byNodes = (n: number): DecideResult | undefined => decideResults.find((r) => r.nodes === n)
  const at100 = byNodes(100)!
  const biggest = decideResults[decideResults.length - 1]!
  const allowPath = (r: DecideResult) => r.paths.find((p) => p.expect === 'allow')!
  const growth = allowPath(biggest).decide.medianUs / allowPath(at100).decide.medianUs
  const wordsGrowth = biggest.words / at100.words
  const heap = (p: Phase): number => (p.memory.heapAfter - p.memory.heapBefore) / MiB
  const RATIO_TARGET: Record<Body['expect'], number> = { allow: 0.9, warn: 0.9, deny: 0.75 }
  const throughputTargets = phases
    .filter((p) => p.cluster.imagesPerNode === 200)
    .flatMap((p) =>
      (['allow', 'warn', 'deny'] as const).map((expect) => {
        const of = p.bodies.filter((b) => bodies.find((x) => x.name === b.body)?.expect === expect)
        const worst = of.reduce((w, b) => (b.ratio < w.ratio ? b : w), of[0]!)
        const want = RATIO_TARGET[expect]
        return {
          target: `throughput at ${p.cluster.nodes} x ${p.cluster.imagesPerNode}, ${expect === 'allow' ? 'allowed' : expect === 'warn' ? 'warned' : 'denied'} bodies >= ${want} x baseline (worst: ${worst.body})`,
          value: `${worst.ratio.toFixed(3)} (cpu ${worst.guard.cpuUs.toFixed(0)} vs ${worst.baseline.cpuUs.toFixed(0)} µs/req)`,
          result: verdict(worst.ratio >= want),
        }
      }),
    )
  const latencyTargets = phases
    .filter((p) => p.cluster.imagesPerNode === 200)
    .map((p) => {
      const worst = p.bodies.reduce(
        (w, b) => (b.guard.p99 / b.baseline.p99 > w.guard.p99 / w.baseline.p99 ? b : w),
        p.bodies[0]!,
      )
      const r = worst.guard.p99 / worst.baseline.p99
      return {
        target: `p99 latency at ${p.cluster.nodes} x ${p.cluster.imagesPerNode} within 2x the baseline's on every body (worst: ${worst.body})`,
        value: `${worst.guard.p99} vs ${worst.baseline.p99} ms (${r.toFixed(2)}x)`,
        result: verdict(r <= 2),
      }
    })
  const at5000 = byNodes(5000)
  const decideTargets =
    at5000 === undefined
      ? []
      : at5000.paths.flatMap((p) => [
          {
            target: `decide() ${p.body}, 5,000 nodes: median <= 10 µs`,
            value: `${p.decide.medianUs.toFixed(2)} µs`,
            result: verdict(p.decide.medianUs <= 10),
          },
          {
            target: `decide() ${p.body}, 5,000 nodes: p99 <= 50 µs`,
            value: `${p.decide.p99Us.toFixed(2)} µs`,
            result: verdict(p.decide.p99Us <= 50),
          },
        ])
  const rssPhase = phases.find((p) => p.cluster.nodes === 5000 && p.cluster.imagesPerNode === 200)
  const targets = [
    ...throughputTargets,
    ...latencyTargets,
    ...decideTargets,
    {
      target: `decide() growth ${at100.nodes} -> ${biggest.nodes} nodes no worse than words (nodes/32): ${wordsGrowth.toFixed(1)}x`,
      value: `${growth.toFixed(2)}x`,
      result: verdict(growth <= wordsGrowth),
    },
    {
      target: 'webhook RSS at idle, before any inventory <= 80 MiB (median of 3 starts)',
      value: `${idle.rssMiB.median.toFixed(1)} MiB`,
      result: verdict(idle.rssMiB.median <= 80),
    },
    ...(rssPhase === undefined
      ? []
      : [
          {
            target: 'webhook RSS with 5,000 x 200 loaded <= 160 MiB',
            value: `${(rssPhase.memory.rssAfter / MiB).toFixed(1)} MiB`,
            result: verdict(rssPhase.memory.rssAfter / MiB <= 160),
          },
        ]),
    ...phases.map((p) => {
      const limit = p.cluster.imagesPerNode >= 1000 ? 160 : 32
      return {
        target: `inventory heap ${p.cluster.nodes} x ${p.cluster.imagesPerNode} <= ${limit} MiB`,
        value: `${heap(p).toFixed(1)} MiB`,
        result: verdict(heap(p) <= limit),
      }
    }),
    ...(agent.skipped !== undefined
      ? []
      : [
          {
            target: `agent at idle with ${agent.images} images: RSS <= 64 MiB (median)`,
            value: `${agent.rssMiB.median.toFixed(1)} MiB (max ${agent.rssMiB.max.toFixed(1)})`,
            result: verdict(agent.rssMiB.median <= 64),
          },
          {
            target: `agent at idle with ${agent.images} images: CPU <= 1 % of one core`,
            value: `${agent.cpuPercentOfOneCore.toFixed(2)} %`,
            result: verdict(agent.cpuPercentOfOneCore <= 1),
          },
        ]),
    {
      target: "one node's update (200 images changed) <= 1 ms (median)",
      value: `${(update.update.medianUs / 1000).toFixed(3)} ms (p99 ${(update.update.p99Us / 1000).toFixed(3)} ms)`,
      result: verdict(update.update.medianUs <= 1000),
    },
  ]

  log('\nsummary (medians over rounds; ratio = guard/baseline req/s in the same round; cpu = server CPU per request)')
  for (const p of phases) {
    log(
      `  ${p.cluster.nodes} x ${p.cluster.imagesPerNode}: heap +${heap(p).toFixed(1)} MiB, RSS ${(p.memory.rssAfter / MiB).toFixed(0)} MiB (idle server before load: ${(p.memory.rssBefore / MiB).toFixed(0)} MiB), load ${(p.memory.loadMs / 1000).toFixed(1)} s`,
    )
    for (const b of p.bodies) {
      log(
        `    ${b.body.padEnd(26)} guard ${b.guard.rps.toFixed(0).padStart(6)} req/s p50/p99/p99.9 ${b.guard.p50}/${b.guard.p99}/${b.guard.p99_9} ms cpu ${b.guard.cpuUs.toFixed(0)} µs | baseline ${b.baseline.rps.toFixed(0).padStart(6)} req/s ${b.baseline.p50}/${b.baseline.p99}/${b.baseline.p99_9} ms cpu ${b.baseline.cpuUs.toFixed(0)} µs | ratio ${b.ratio.toFixed(3)} cpu ratio ${b.cpuRatio.toFixed(3)}`,
      )
    }
  }
  if (calibration !== undefined) {
    log('  calibration: the bare server spinning per request as long as checkPodReview takes warm (1,000 nodes)')
    for (const r of calibration.rows)
      log(
        `    ${r.body.padEnd(26)} ${r.workUs.toFixed(1).padStart(5)} µs of work: ratio ${r.ratio.toFixed(3)}, cpu ${r.cpuUs.toFixed(0)} vs ${calibration.baseline.cpuUs.toFixed(0)} µs/req (${r.cpuPerWorkUs.toFixed(1)} µs of CPU per µs of work)`,
      )
  }
  log('\ntargets')
  for (const t of targets) log(`  ${t.result}  ${t.target}: ${t.value}`)

  const results = {
    machine,
    quick,
    settings: {
      rounds: count,
      seconds,
      connections,
      serverPerChildProcess: true,
      guardLogLevel: 'info (to /dev/null)',
    },
    decide: decideResults,
    idle,
    update,
    phases: phases.map((p) => ({
      cluster: p.cluster,
      memory: { ...p.memory, heapMiB: heap(p) },
      bodies: p.bodies,
      runs: p.runs,
    })),
    calibration,
    agent,
    targets,
    elapsedSeconds: (Date.now() - started) / 1000,
  }
  const dir = fileURLToPath(new URL('./results/', import.meta.url))
  await mkdir(dir, { recursive: true })
  const file = join(dir, `${date.toISOString().replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`)
  await writeFile(file, JSON.stringify(results, null, 1) + '\n')
  log(`\nsaved ${file} (${results.elapsedSeconds.toFixed(0)} s)`)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
