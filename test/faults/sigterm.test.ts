import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { get } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import t from 'tap'
import { localCertificates } from '../helpers/local-webhook.js'
import { localWebhookArgs } from '../helpers/webhook-args.js'
import { failed, keepAliveAgent, loop, sleep, summary, type Outcome } from './load.js'

// SIGTERM while the webhook is under load, as Kubernetes stops a pod: the webhook turns not
// ready at once, keeps answering while the endpoints drain (--shutdown-delay), then closes
// and exits 0. The apiserver keeps sending until the endpoint update reaches it, so nothing it
// sends in that window may fail.

const DELAY_MS = 2000
const LOAD_BEFORE_MS = 1000
/** How long the load keeps going past the drain: requests meeting the close itself. */
const PAST_DRAIN_MS = 500
/** Like a terminationGracePeriodSeconds well above the delay. */
const EXIT_WITHIN_MS = 10_000

function readyz(url: string, ca: string): Promise<number> {
  return new Promise((resolve) => {
    const req = get(`${url}/readyz`, { ca, agent: false, timeout: 2000 }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve(-1))
  })
}

t.test('SIGTERM under sustained load: not ready at once, every request answered, exit 0', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'neverpull-sigterm-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await localCertificates(dir)
  const ca = await readFile(join(dir, 'ca.crt'), 'utf8')

  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli.ts',
      'webhook',
      ...localWebhookArgs({
        tls: { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') },
        shutdownDelay: `${DELAY_MS / 1000}s`,
      }),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } },
  )
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, at: performance.now() })),
  )
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const logs: Array<Record<string, unknown>> = []
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`webhook did not start in 20 s; stderr: ${stderr}`)), 20_000)
    createInterface({ input: child.stdout }).on('line', (line) => {
      let entry: Record<string, unknown>
      try {
        entry = JSON.parse(line) as Record<string, unknown>
      } catch {
        return
      }
      logs.push(entry)
      const m = /Server listening at (https:\/\/\S+)/.exec(String(entry['msg']))
      if (m !== null) {
        clearTimeout(timer)
        resolve(m[1]!.replace('localhost', '127.0.0.1'))
      }
    })
    child.on('exit', (code) => reject(new Error(`webhook exited ${code} before listening; stderr: ${stderr}`)))
  })
  t.equal(await readyz(url, ca), 200, 'ready before SIGTERM')

  const body = await readFile('examples/reviews/statefulset-warn-partial.json', 'utf8')
  const agent = keepAliveAgent(ca, 8)
  t.teardown(() => agent.destroy())
  let sigtermAt = Number.POSITIVE_INFINITY
  const stop = (): boolean => performance.now() > sigtermAt + DELAY_MS + PAST_DRAIN_MS
  const outcomes: Outcome[] = []
  const loops = Array.from({ length: 8 }, () => loop({ url, ca, body, agent, timeoutMs: 5000 }, stop, outcomes))

  // Readiness, polled on its own connections like the kubelet's probe.
  const probes: Array<{ at: number; status: number }> = []
  let probing = true
  const prober = (async () => {
    while (probing) {
      const status = await readyz(url, ca)
      probes.push({ at: performance.now(), status })
      await sleep(20)
    }
  })()

  await sleep(LOAD_BEFORE_MS)
  sigtermAt = performance.now()
  child.kill('SIGTERM')
  await Promise.all(loops)
  const exit = await Promise.race([exited, sleep(EXIT_WITHIN_MS).then(() => undefined)])
  probing = false
  await prober

  const drainEnd = sigtermAt + DELAY_MS
  // The server's own moment of closing (its log line), on this process's clock: a request
  // that ended before it was served during the drain, whatever the client's timestamps
  // say under load; a connection refused or reset can only come after it.
  const closingLine = logs.find((l) => String(l['msg']).startsWith('drained:'))
  const closeAt = closingLine === undefined ? drainEnd : Number(closingLine['time']) - performance.timeOrigin
  const before = outcomes.filter((o) => o.start < sigtermAt)
  const draining = outcomes.filter((o) => o.start >= sigtermAt && o.end < closeAt)
  const past = outcomes.filter((o) => o.start >= sigtermAt && o.end >= closeAt)
  const firstNotReady = probes.find((p) => p.at > sigtermAt && p.status === 503)
  const readyAfter = probes.filter((p) => p.at > (firstNotReady?.at ?? Infinity) && p.at < drainEnd && p.status !== 503)
  t.comment(`before SIGTERM: ${summary(before)}`)
  t.comment(`during the ${DELAY_MS} ms drain: ${summary(draining)}`)
  t.comment(`ended after the server began closing (meeting the close): ${summary(past)}`)
  t.comment(`the server began closing ${(closeAt - sigtermAt).toFixed(0)} ms after SIGTERM`)
  for (const o of past.filter(failed).slice(0, 12))
    t.comment(
      `  ended +${(o.end - closeAt).toFixed(0)} ms after the close began: ${o.error ?? `HTTP ${o.status}`} (${o.reused ? 'kept-alive' : 'new'} connection)`,
    )
  t.comment(
    `/readyz 503 ${firstNotReady === undefined ? 'never' : `${(firstNotReady.at - sigtermAt).toFixed(0)} ms`} after SIGTERM; exit ${exit === undefined ? 'none' : `${exit.code} ${(exit.at - sigtermAt).toFixed(0)} ms`} after SIGTERM`,
  )

  // Counts, not rates: how many requests fit in 2 s depends on the machine and its load (this
  // failed at a load average of 10 when it asked for 200); what matters is that there was
  // traffic on kept-alive connections before SIGTERM and that the server went on serving it.
  t.ok(before.length >= 10 && draining.length >= 10, 'load before and during the drain')
  t.same(before.filter(failed), [], 'no request before SIGTERM failed')
  t.same(draining.filter(failed), [], 'no request during the drain failed (non-2xx, error or timeout)')
  t.same(
    past.filter((o) => o.status !== undefined && (o.status < 200 || o.status > 299)),
    [],
    'every request the server answered after the drain got a 2xx',
  )
  // Readiness must fail while the server still serves, so endpoints drain before it closes;
  // an order of events, not a time (a busy machine delays the probe, not the order).
  t.ok(firstNotReady !== undefined && firstNotReady.at < closeAt, '/readyz turns 503 before the server begins closing')
  t.same(readyAfter, [], '/readyz stays 503 while draining')
  t.ok(exit !== undefined, `exits within ${EXIT_WITHIN_MS} ms`)
  if (exit !== undefined) {
    t.equal(exit.code, 0, 'exit code 0')
    t.ok(exit.at - sigtermAt >= DELAY_MS, 'not before the drain delay')
  }
  t.ok(
    logs.some((l) => String(l['msg']).startsWith('shutting down')),
    'logs the shutdown',
  )
})
