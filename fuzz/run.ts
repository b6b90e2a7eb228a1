import fc from 'fast-check'
import { parseArgs } from 'node:util'
import { createEnv, PROPERTIES } from '../test/fuzz/properties.js'

// npm run fuzz [-- --seed N] [--scale X] [--only TEXT]
// The properties of test/fuzz/ with 100,000+ cases in all. A failure prints fast-check's
// counterexample with its seed and path; `--seed N --only TEXT` replays that property.

const USAGE = `Usage: npm run fuzz -- [--seed N] [--scale X] [--only TEXT]
  --seed N               fast-check seed (default: random, printed)
  --scale X              multiply every property's case count (default 1: 100,000+ cases in all)
  --only TEXT            run only the properties whose name contains TEXT
`

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    scale: { type: 'string' },
    only: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
})
if (values.help === true) {
  process.stdout.write(USAGE)
  process.exit(0)
}
const seed = values.seed === undefined ? (Date.now() ^ (Math.random() * 0x100000000)) | 0 : Number(values.seed)
const scale = values.scale === undefined ? 1 : Number(values.scale)
if (!Number.isInteger(seed) || !(scale > 0)) {
  process.stderr.write(USAGE)
  process.exit(2)
}

const env = await createEnv()
const selected = PROPERTIES.filter((p) => values.only === undefined || p.name.includes(values.only))
process.stdout.write(`neverpull-guard fuzz: seed ${seed}, ${selected.length} properties\n\n`)

const rows: Array<{ name: string; cases: number; ms: number; ok: boolean }> = []
const failures: string[] = []
const started = performance.now()
for (const def of selected) {
  const runs = Math.max(1, Math.round(def.fuzzRuns * scale))
  const t0 = performance.now()
  let details
  try {
    details = await fc.check(def.build(env), { numRuns: runs, seed })
  } catch (err) {
    // A generator bug, not a finding about the webhook; the other properties still run.
    failures.push(`${def.name}\nthe runner itself failed: ${(err as Error).stack ?? String(err)}\n`)
    rows.push({ name: def.name, cases: 0, ms: performance.now() - t0, ok: false })
    process.stdout.write(`FAIL       0 cases          ${def.name} (runner error)\n`)
    continue
  }
  const ms = performance.now() - t0
  const cases = details.numRuns
  rows.push({ name: def.name, cases, ms, ok: !details.failed })
  process.stdout.write(
    `${details.failed ? 'FAIL' : 'ok  '} ${String(cases).padStart(7)} cases ${(ms / 1000).toFixed(1).padStart(6)} s  ${def.name}\n`,
  )
  if (details.failed) {
    const report = fc.defaultReportMessage(details) ?? 'failed'
    failures.push(
      `${def.name}\n${report}\nreplay: npm run fuzz -- --seed ${details.seed} --only '${def.name.slice(0, 40)}'\n`,
    )
  }
}
const total = rows.reduce((n, r) => n + r.cases, 0)
const seconds = (performance.now() - started) / 1000
process.stdout.write(`\ntotal ${total} cases in ${seconds.toFixed(1)} s, seed ${seed}\n`)
const slowest = [...env.slowest].map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ')
process.stdout.write(`slowest case: ${slowest}\n`)
await env.app.close()
if (failures.length > 0) {
  process.stdout.write(
    `\n${failures.length} propert${failures.length === 1 ? 'y' : 'ies'} failed:\n\n${failures.join('\n')}`,
  )
  process.exitCode = 1
}
