import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

// The webhook as a cluster runs it (the compiled CLI, not this process's tsx), started on an
// empty inventory: its resident memory once it listens, before any node is known. That is the
// cost of what it loads at startup, which is what the idle target is about.

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url))

export interface IdleResult {
  rssMiB: { median: number; samples: number[] }
}

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)
  if (kb === null) throw new Error(`no VmRSS for ${pid}`)
  return Number(kb[1]) / 1024
}

export async function webhookIdleBench(certDir: string, starts: number, log: (l: string) => void): Promise<IdleResult> {
  const empty = join(certDir, 'empty-inventory.yaml')
  await writeFile(empty, 'apiVersion: v1\nkind: List\nitems: []\n')
  const samples: number[] = []
  for (let i = 0; i < starts; i++) {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'webhook',
        '--host',
        '127.0.0.1',
        '--port',
        String(28443 + i),
        '--metrics-port',
        '0',
        '--tls-cert',
        join(certDir, 'tls.crt'),
        '--tls-key',
        join(certDir, 'tls.key'),
        '--inventory-file',
        empty,
        '--log-level',
        'info',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    try {
      await new Promise<void>((resolve, reject) => {
        let out = ''
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString()
          if (out.includes('listening')) resolve()
        })
        child.stderr.on('data', (c: Buffer) => (out += c.toString()))
        child.once('exit', (code) => reject(new Error(`webhook exited with ${code}: ${out}`)))
      })
      // Let startup garbage settle as it would in a pod that has just become ready.
      await sleep(3000)
      samples.push(await rssOf(child.pid!))
    } finally {
      child.kill('SIGKILL')
      await new Promise((r) => child.once('exit', r))
    }
  }
  const sorted = [...samples].sort((a, b) => a - b)
  const median = sorted[sorted.length >> 1]!
  log(
    `  webhook idle, empty inventory: RSS median ${median.toFixed(1)} MiB over ${starts} starts (${samples.map((s) => s.toFixed(1)).join(', ')})`,
  )
  return { rssMiB: { median, samples } }
}
