import { readFileSync, readdirSync } from 'node:fs'
import { keepAliveAgent, post } from '../test/faults/load.js'

// The soak's load generator, in its own process so that its allocations stay out of the
// webhook's heap figures. Cycles through the example reviews (allowed, warned, denied) on
// keep-alive connections and prints its counters as one JSON line every few seconds.

const url = process.env['SOAK_URL']!
const ca = readFileSync(process.env['SOAK_CA']!, 'utf8')
const seconds = Number(process.env['SOAK_SECONDS'])
const concurrency = Number(process.env['SOAK_CONCURRENCY'] ?? '8')
const dir = new URL('../examples/reviews/', import.meta.url)
const bodies = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => readFileSync(new URL(f, dir), 'utf8'))

const counts = {
  sent: 0,
  ok: 0,
  failed: 0,
  allowed: 0,
  warned: 0,
  denied: 0,
  errors: {} as Record<string, number>,
  maxMs: 0,
}
const agent = keepAliveAgent(ca, concurrency)
const end = Date.now() + seconds * 1000
let next = 0

async function worker(): Promise<void> {
  while (Date.now() < end) {
    const body = bodies[next++ % bodies.length]!
    const o = await post({ url, ca, body, agent, timeoutMs: 10_000 })
    counts.sent++
    counts.maxMs = Math.max(counts.maxMs, o.end - o.start)
    if (o.error !== undefined || o.status !== 200) {
      counts.failed++
      const k = o.error ?? `HTTP ${o.status}`
      counts.errors[k] = (counts.errors[k] ?? 0) + 1
      continue
    }
    counts.ok++
    if (o.allowed === false) counts.denied++
    else if ((o.warnings ?? 0) > 0) counts.warned++
    else counts.allowed++
  }
}

const report = setInterval(() => process.stdout.write(JSON.stringify(counts) + '\n'), 2000)
await Promise.all(Array.from({ length: concurrency }, worker))
clearInterval(report)
process.stdout.write(JSON.stringify({ ...counts, done: true }) + '\n')
agent.destroy()
