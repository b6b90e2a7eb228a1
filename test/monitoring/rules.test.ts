// The alerting and recording rules as Prometheus will load them: the rule file is taken
// out of the PrometheusRule that the monitoring overlay renders, checked with the real
// "promtool check rules", and unit-tested with "promtool test rules" on the scenarios in
// *.promtool.yaml next to this file. Also: every alert is complete (severity, summary,
// description, a runbook_url whose anchor docs/runbooks.md has) and has a scenario where it
// fires and one where it does not.
import { execFile } from 'node:child_process'
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { parse, stringify } from 'yaml'
import { render } from '../manifests/render.js'

const run = promisify(execFile)
const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')

interface Rule {
  record?: string
  alert?: string
  expr: string
  for?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}
interface Group {
  name: string
  rules: Rule[]
}

const objects = render(join(root, 'manifests', 'overlays', 'monitoring'))
const rule = objects.find((o) => o.kind === 'PrometheusRule')
if (rule === undefined) throw new Error('the monitoring overlay renders no PrometheusRule')
const groups = (rule['spec'] as { groups: Group[] }).groups
const alerts = groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined)

async function promtool(): Promise<string | undefined> {
  try {
    await run('promtool', ['--version'])
    return undefined
  } catch {
    return 'promtool is not installed (Debian: apt-get install prometheus); the rules were not checked or tested'
  }
}
const missing = await promtool()

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>()
  for (const m of markdown.matchAll(/^#{1,6}\s+(.+)$/gm)) {
    out.add(
      m[1]!
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    )
  }
  return out
}

t.test('every alert is complete and links to its runbook', async (t) => {
  t.ok(alerts.length >= 9, `${alerts.length} alerts`)
  const runbooks = anchors(await readFile(join(root, 'docs', 'runbooks.md'), 'utf8'))
  for (const a of alerts) {
    const name = a.alert!
    t.match(name, /^NeverpullGuard[A-Z][A-Za-z]+$/, `${name}: named like the kubernetes-mixin's alerts`)
    t.ok(['warning', 'critical'].includes(a.labels?.['severity'] ?? ''), `${name}: severity warning or critical`)
    t.match(a.for ?? '', /^\d+[mh]$/, `${name}: has a for: duration`)
    for (const key of ['summary', 'description', 'runbook_url'])
      t.ok((a.annotations?.[key] ?? '').length > 0, `${name}: ${key}`)
    const url = a.annotations?.['runbook_url'] ?? ''
    const anchor = /\/docs\/runbooks\.md#([a-z0-9-]+)$/.exec(url)?.[1]
    t.ok(anchor !== undefined && runbooks.has(anchor), `${name}: ${url} points at a section of docs/runbooks.md`)
    t.equal(anchor, name.toLowerCase(), `${name}: the section is named after the alert`)
  }
})

t.test('every alert has a firing and a not-firing scenario', async (t) => {
  const files = (await readdir(here)).filter((f) => f.endsWith('.promtool.yaml'))
  t.ok(files.length > 0, 'promtool test files exist')
  const fired = new Set<string>()
  const quiet = new Set<string>()
  for (const f of files) {
    const doc = parse(await readFile(join(here, f), 'utf8')) as {
      rule_files: string[]
      tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>
    }
    t.strictSame(doc.rule_files, ['rules.yaml'], `${f} tests the extracted rule file`)
    for (const test of doc.tests) {
      for (const a of test.alert_rule_test ?? []) ((a.exp_alerts ?? []).length > 0 ? fired : quiet).add(a.alertname)
    }
  }
  for (const name of new Set(alerts.map((a) => a.alert!))) {
    t.ok(fired.has(name), `${name} fires in a scenario`)
    t.ok(quiet.has(name), `${name} stays quiet in a scenario`)
  }
  // A rule renamed without its tests would leave them testing nothing.
  for (const name of [...fired, ...quiet])
    t.ok(
      alerts.some((a) => a.alert === name),
      `${name} (tested) exists`,
    )
})

t.test('promtool check rules and promtool test rules', { skip: missing ?? false }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'npg-rules-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'rules.yaml'), stringify({ groups }))
  const check = await run('promtool', ['check', 'rules', join(dir, 'rules.yaml')])
  t.match(check.stdout, /SUCCESS: \d+ rules found/, 'promtool check rules')
  const files = (await readdir(here)).filter((f) => f.endsWith('.promtool.yaml'))
  for (const f of files) await copyFile(join(here, f), join(dir, f))
  try {
    const out = await run('promtool', ['test', 'rules', ...files], { cwd: dir })
    t.match(out.stdout, /SUCCESS/, `promtool test rules ${files.join(' ')}`)
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string }
    t.fail(`promtool test rules failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`)
  }
})
