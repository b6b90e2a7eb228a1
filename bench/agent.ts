import { spawn } from 'node:child_process'
import { createServer as createNetServer, type AddressInfo } from 'node:net'
import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { containerdSkipReason, startContainerd } from '../test/helpers/containerd.js'
import { httpsFront, startFakeApiServer, type KubeObject } from '../test/helpers/fake-apiserver.js'
import { writeOciImage } from '../test/helpers/oci.js'
import { daemonSetNodeOptions, podServiceAccount } from '../test/helpers/agent-pod.js'

// The agent at idle on a node with 1,000 images: a real containerd holding 1,000 distinct
// images, the compiled agent (`node dist/cli.js agent`, as the DaemonSet runs it) with its
// default 10 s interval, publishing to an in-process API server. After its first publish
// it is sampled for a minute: RSS from /proc, CPU from utime+stime.

export interface AgentIdleResult {
  images: number
  samples: number
  seconds: number
  rssMiB: { median: number; max: number }
  cpuPercentOfOneCore: number
  publishedBytes: number
  /** What the agent ran with: the DaemonSet's NODE_OPTIONS unless AGENT_NODE_OPTIONS said otherwise. */
  nodeOptions?: string
  skipped?: string
}

const CLK_TCK = 100

async function freePort(): Promise<number> {
  const s = createNetServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

async function procStats(pid: number): Promise<{ rssKiB: number; cpuTicks: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN)
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')
  // Fields after "pid (comm) ": state is [0], utime [11], stime [12].
  return { rssKiB, cpuTicks: Number(stat[11]) + Number(stat[12]) }
}

export async function agentIdleBench(
  images: number,
  seconds: number,
  log: (line: string) => void,
): Promise<AgentIdleResult> {
  const skipped = await containerdSkipReason()
  if (skipped !== undefined) {
    log(`  skipped: ${skipped}`)
    return {
      images,
      samples: 0,
      seconds: 0,
      rssMiB: { median: Number.NaN, max: Number.NaN },
      cpuPercentOfOneCore: Number.NaN,
      publishedBytes: 0,
      skipped,
    }
  }
  const ctrd = await startContainerd()
  const api = await startFakeApiServer()
  const cleanups: Array<() => Promise<void>> = []
  try {
    const started = performance.now()
    for (let i = 0; i < images; i++) {
      const image = await writeOciImage(ctrd.dir, `i${i}.tar`, {
        names: [`registry.example.com/team-${i % 37}/app-${i}:1.${i}.0`],
        content: `image ${i}`,
      })
      await ctrd.importImage(image.path)
    }
    log(`  ${images} images imported into containerd in ${((performance.now() - started) / 1000).toFixed(0)} s`)
    api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', uid: 'uid-node-a' } })
    // In a pod the agent reaches the apiserver over HTTPS with its service account; the
    // in-process API server speaks HTTP, so a small TLS front stands before it.
    const account = await podServiceAccount(ctrd.dir, 'bench-token', 30)
    const sa = account.dir
    const front = await httpsFront(api.url, account)
    // The metrics listener on, and scraped every 15 s (Prometheus' usual interval is 30 s).
    const metricsPort = await freePort()
    const nodeOptions = process.env['AGENT_NODE_OPTIONS'] ?? (await daemonSetNodeOptions())
    log(`  NODE_OPTIONS=${nodeOptions}`)
    const agent = spawn(
      process.execPath,
      [
        'dist/cli.js',
        'agent',
        '--node-name',
        'node-a',
        '--cri-endpoint',
        ctrd.endpoint,
        '--service-account-dir',
        sa,
        '--log-level',
        'warn',
        '--metrics-port',
        String(metricsPort),
      ],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
        // As the DaemonSet runs it (manifests/base/agent-daemonset.yaml).
        env: {
          ...process.env,
          KUBERNETES_SERVICE_HOST: '127.0.0.1',
          KUBERNETES_SERVICE_PORT: String(front.port),
          NODE_OPTIONS: nodeOptions,
        },
      },
    )
    cleanups.push(() => front.close())
    try {
      const deadline = Date.now() + 60_000
      let published: (KubeObject & { spec?: { images?: unknown[] } }) | undefined
      while (Date.now() < deadline) {
        published = api.get<KubeObject & { spec?: { images?: unknown[] } }>(
          'neverpull.dev/v1alpha1',
          'NodeImageSet',
          'node-a',
        )
        if ((published?.spec?.images?.length ?? 0) === images) break
        await sleep(200)
      }
      if ((published?.spec?.images?.length ?? 0) !== images)
        throw new Error('the agent did not publish the images within 60 s')
      const publishedBytes = JSON.stringify(published).length
      await sleep(5000)
      const pid = agent.pid!
      const first = await procStats(pid)
      const t0 = performance.now()
      const rss: number[] = []
      let scrapedAt = Number.NEGATIVE_INFINITY
      let scrapes = 0
      while (performance.now() - t0 < seconds * 1000) {
        await sleep(2000)
        if (performance.now() - scrapedAt >= 15_000) {
          scrapedAt = performance.now()
          const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
          if (!/^neverpull_agent_images \d+/m.test(await res.text()))
            throw new Error("the agent's /metrics lacks neverpull_agent_images")
          scrapes++
        }
        rss.push((await procStats(pid)).rssKiB / 1024)
      }
      const last = await procStats(pid)
      const elapsed = (performance.now() - t0) / 1000
      const cpu = ((last.cpuTicks - first.cpuTicks) / CLK_TCK / elapsed) * 100
      rss.sort((a, b) => a - b)
      const result: AgentIdleResult = {
        images,
        samples: rss.length,
        seconds: elapsed,
        rssMiB: { median: rss[rss.length >> 1]!, max: rss[rss.length - 1]! },
        cpuPercentOfOneCore: cpu,
        publishedBytes,
        nodeOptions,
      }
      log(`  ${scrapes} scrapes of /metrics`)
      log(
        `  RSS median ${result.rssMiB.median.toFixed(1)} MiB, max ${result.rssMiB.max.toFixed(1)} MiB; CPU ${cpu.toFixed(2)} % of one core over ${elapsed.toFixed(0)} s (interval 10 s); NodeImageSet ${(publishedBytes / 1024).toFixed(0)} KiB`,
      )
      return result
    } finally {
      agent.kill('SIGTERM')
    }
  } finally {
    for (const c of cleanups) await c()
    await api.close()
    await ctrd.cleanup()
  }
}
