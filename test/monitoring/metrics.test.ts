// Every metric the alerting rules and the Grafana dashboard read exists, with the labels they
// use, in what the webhook and the agent answer on /metrics. Renaming a metric or dropping a
// label breaks this test instead of silently emptying an alert or a panel in production.
import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'node:https'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import t from 'tap'
import { createAgent } from '../../src/agent/agent.js'
import { createAgentMetrics, serveAgentMetrics } from '../../src/agent/metrics.js'
import { ensureCertificates, writeFileAtomic } from '../../src/certs/files.js'
import { generateServing } from '../../src/certs/generate.js'
import { certificateNotAfter } from '../../src/server/tls-reload.js'
import type { InventoryView } from '../../src/inventory/inventory-index.js'
import { webhookApp } from '../../src/server/app.js'
import { createMetrics } from '../../src/server/metrics.js'
import { exampleInventory, review } from '../helpers/fixtures.js'
import { nodeFacts } from '../helpers/inventory.js'
import { sample, series, type Series } from '../helpers/metrics.js'
import { localCertificates } from '../helpers/local-webhook.js'
import { startTestWebhook } from '../helpers/webhook.js'
import { render } from '../manifests/render.js'
import type { AdmissionReviewReply } from '../../src/admission/review.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const now = Date.parse('2026-11-21T06:00:00Z')

/**
 * What the rules and the dashboard may read, and the labels each series carries itself.
 * Prometheus adds namespace and pod (and node, for the agent, by the PodMonitor) when it
 * scrapes; neverpull_admission_denials_total brings its own namespace (honorLabels).
 */
const WEBHOOK: Record<string, string[]> = {
  neverpull_admission_requests_total: ['kind', 'operation', 'decision'],
  neverpull_admission_errors_total: ['reason'],
  neverpull_admission_denials_total: ['namespace', 'kind'],
  neverpull_admission_duration_seconds_bucket: ['le'],
  neverpull_inventory_stale_after_seconds: [],
  neverpull_inventory_node_ready: ['node'],
  neverpull_inventory_observed_timestamp_seconds: ['node'],
  neverpull_inventory_fresh_nodes: [],
  neverpull_inventory_nodes: [],
  neverpull_inventory_image_sets: [],
  neverpull_audit_at_risk_objects: ['kind'],
  neverpull_audit_checked_objects: [],
  neverpull_audit_last_pass_timestamp_seconds: [],
  neverpull_audit_interval_seconds: [],
  neverpull_audit_leader: [],
  neverpull_serving_certificate_expiration_timestamp_seconds: [],
  neverpull_steered_pods_total: ['namespace'],
}
const AGENT: Record<string, string[]> = {
  neverpull_agent_runtime_reachable: [],
  neverpull_agent_images: [],
  neverpull_agent_publishes_total: ['object', 'result'],
  neverpull_agent_last_publish_timestamp_seconds: [],
}
const TARGET_LABELS = new Set(['namespace', 'pod', 'node', 'job', 'instance', 'container', 'service', 'endpoint'])

/** Every PromQL expression in the PrometheusRule and the dashboard, with where it is. */
async function expressions(): Promise<Array<{ where: string; expr: string }>> {
  const out: Array<{ where: string; expr: string }> = []
  const rule = render(join(root, 'manifests', 'overlays', 'monitoring')).find((o) => o.kind === 'PrometheusRule')
  for (const g of (
    rule?.['spec'] as { groups: Array<{ rules: Array<{ alert?: string; record?: string; expr: string }> }> }
  ).groups) {
    for (const r of g.rules) out.push({ where: r.alert ?? r.record ?? '?', expr: r.expr })
  }
  const dashboard = JSON.parse(
    await readFile(join(root, 'manifests', 'components', 'monitoring', 'dashboard.json'), 'utf8'),
  ) as {
    panels: Array<{ title: string; targets?: Array<{ expr: string }> }>
  }
  for (const p of dashboard.panels)
    for (const target of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: target.expr })
  return out
}

/** Metric names in an expression (recording rules, with colons, are not metrics). */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/(?<![\w:])(neverpull_[a-z0-9_]+)(?![\w:])/g)].map((m) => m[1]!)
}

/** Label names used in `metric{...}` matchers. */
function matcherLabels(expr: string): Array<{ metric: string; label: string }> {
  const out: Array<{ metric: string; label: string }> = []
  for (const m of expr.matchAll(/(?<![\w:])(neverpull_[a-z0-9_]+)\{([^}]*)\}/g)) {
    for (const l of m[2]!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!=|!~|=)/g)) out.push({ metric: m[1]!, label: l[1]! })
  }
  return out
}

function labelNames(list: Series[]): Set<string> {
  return new Set(list.flatMap((s) => Object.keys(s.labels)))
}

/** A webhook with every series populated: reviews of each outcome, audit, certificate, nodes in every state. */
let inventoryObservedA = Number.NaN

async function webhookScrape(): Promise<string> {
  const inventory = exampleInventory(now)
  inventoryObservedA = inventory.observedAt(inventory.slotOf('node-a')!)
  const metrics = createMetrics({ inventory, now: () => now })
  const app = Fastify({ logger: false })
  await app.register(webhookApp, { inventory, mode: 'enforce', metrics, ready: () => true, now: () => now })
  // A review that crashes the decision: the same metrics, an inventory that throws.
  const broken = new Proxy(inventory, {
    get(target, key) {
      const v: unknown = Reflect.get(target, key)
      return typeof v === 'function'
        ? () => {
            throw new Error('injected failure')
          }
        : v
    },
  }) as InventoryView
  const crashing = Fastify({ logger: false })
  await crashing.register(webhookApp, {
    inventory: broken,
    mode: 'enforce',
    metrics,
    ready: () => true,
    now: () => now,
  })
  try {
    t.equal(
      (
        await app.inject({ method: 'POST', url: '/validate', payload: review('deployment-update-image') })
      ).json<AdmissionReviewReply>().response.allowed,
      false,
      'a denial',
    )
    await app.inject({ method: 'POST', url: '/validate', payload: review('pod-create') })
    await app.inject({ method: 'POST', url: '/validate', payload: { nope: 1 } })
    await app.inject({
      method: 'POST',
      url: '/validate',
      payload: '{"apiVersion": ',
      headers: { 'content-type': 'application/json' },
    })
    const crashed = (
      await crashing.inject({ method: 'POST', url: '/validate', payload: review('pod-create') })
    ).json<AdmissionReviewReply>()
    t.equal(crashed.response.allowed, true, 'an internal error allows, with a warning')
    metrics.auditStarted(300_000)
    metrics.auditLeader(true)
    metrics.auditPass({ checked: 5, atRisk: 2, events: 2, byKind: { Deployment: 2 } })
    metrics.servingCertificate(now + 30 * 86_400_000)
    // A pod the mutating webhook steered (its own tests drive /mutate; here only the counter).
    metrics.observeMutation(
      {
        uid: 'u',
        kind: 'Pod',
        namespace: 'shop',
        name: 'web-1',
        operation: 'CREATE',
        user: 'u',
        dryRun: false,
        decision: 'steer',
        outcome: 'steered',
      },
      0.001,
    )
    inventory.upsertNode({ ...nodeFacts({ name: 'node-new' }), ready: true })
    inventory.upsertNode({ ...nodeFacts({ name: 'node-down' }), ready: false })
    return (await app.inject('/metrics')).body
  } finally {
    await app.close()
    await crashing.close()
  }
}

async function agentScrape(): Promise<string> {
  const metrics = createAgentMetrics()
  const server = await serveAgentMetrics(metrics.registry, 0, '127.0.0.1')
  try {
    const image = { id: 'sha256:aa', repoTags: ['docker.io/library/a:1'], repoDigests: [], size: 1, pinned: false }
    const agent = createAgent({
      nodeName: 'node-a',
      cri: {
        listImages: async () => [image],
        imageStatus: async () => image,
        version: async () => ({ name: 'containerd', version: '1.7.0', endpoint: 'unix:///x.sock' }),
      },
      publisher: { apply: async () => undefined, applyStatus: async () => undefined },
      observer: metrics,
    })
    await agent.tick()
    return await (await fetch(`${server.url}/metrics`)).text()
  } finally {
    await server.close()
  }
}

const webhookText = await webhookScrape()
const agentText = await agentScrape()

t.test('the webhook exposes every series the rules and the dashboard read, with their labels', async (t) => {
  for (const [name, labels] of Object.entries(WEBHOOK)) {
    const found = series(webhookText, name)
    t.ok(found.length > 0, `${name} is scraped`)
    const names = labelNames(found)
    for (const l of labels) t.ok(names.has(l), `${name} has label ${l}`)
    for (const l of names) t.ok(labels.includes(l), `${name}: label ${l} is declared here`)
  }
  // The values the alerts depend on, as the scenarios above made them.
  t.equal(
    sample(webhookText, 'neverpull_admission_denials_total', { namespace: 'default', kind: 'Deployment' }),
    1,
    'the denial by namespace and kind',
  )
  t.equal(sample(webhookText, 'neverpull_admission_errors_total', { reason: 'internal' }), 1)
  t.equal(sample(webhookText, 'neverpull_admission_errors_total', { reason: 'unreadable' }), 1)
  t.equal(sample(webhookText, 'neverpull_admission_errors_total', { reason: 'invalid' }), 1)
  t.equal(
    sample(webhookText, 'neverpull_admission_duration_seconds_bucket', { le: '1' }),
    4,
    'the 1 s bucket the latency alert is drawn at: three reviews and the mutation',
  )
  t.equal(sample(webhookText, 'neverpull_inventory_stale_after_seconds'), 900)
  t.equal(sample(webhookText, 'neverpull_inventory_node_ready', { node: 'node-new' }), 1)
  t.equal(sample(webhookText, 'neverpull_inventory_node_ready', { node: 'node-down' }), 0)
  t.equal(
    sample(webhookText, 'neverpull_inventory_observed_timestamp_seconds', { node: 'node-a' }),
    inventoryObservedA / 1000,
    "the index's observed time",
  )
  t.equal(
    sample(webhookText, 'neverpull_inventory_observed_timestamp_seconds', { node: 'node-new' }),
    undefined,
    'no list, no series: the missing alert',
  )
  t.equal(sample(webhookText, 'neverpull_audit_at_risk_objects', { kind: 'Deployment' }), 2)
  t.equal(sample(webhookText, 'neverpull_audit_interval_seconds'), 300)
  t.equal(sample(webhookText, 'neverpull_audit_last_pass_timestamp_seconds'), now / 1000)
  t.equal(sample(webhookText, 'neverpull_audit_leader'), 1)
  t.equal(sample(webhookText, 'neverpull_serving_certificate_expiration_timestamp_seconds'), now / 1000 + 30 * 86_400)
  t.equal(sample(webhookText, 'neverpull_steered_pods_total', { namespace: 'shop' }), 1)
})

t.test('the agent exposes every series the rules and the dashboard read, with their labels', async (t) => {
  for (const [name, labels] of Object.entries(AGENT)) {
    const found = series(agentText, name)
    t.ok(found.length > 0, `${name} is scraped`)
    const names = labelNames(found)
    for (const l of labels) t.ok(names.has(l), `${name} has label ${l}`)
    for (const l of names) t.ok(labels.includes(l), `${name}: label ${l} is declared here`)
  }
})

t.test('the rules and the dashboard read only declared metrics and labels', async (t) => {
  const declared: Record<string, string[]> = { ...WEBHOOK, ...AGENT }
  const used = new Set<string>()
  for (const { where, expr } of await expressions()) {
    for (const name of metricsIn(expr)) {
      used.add(name)
      t.ok(name in declared, `${where}: ${name} is a metric the webhook or the agent exposes`)
    }
    for (const { metric, label } of matcherLabels(expr)) {
      t.ok(
        (declared[metric] ?? []).includes(label) || TARGET_LABELS.has(label),
        `${where}: ${metric} has label ${label}`,
      )
    }
  }
  for (const name of Object.keys(declared))
    t.ok(used.has(name), `${name} is used by a rule or a panel (else drop it from this list)`)
})

function httpsGet(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request(url, { ca }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => resolve(body))
    })
      .on('error', reject)
      .end()
  })
}

t.test("the served certificate's expiry is exported, and follows a reload", async (t) => {
  const dir = t.testdir()
  const made = await localCertificates(dir)
  const ca = await readFile(made.paths.caCert, 'utf8')
  const hook = await startTestWebhook(t, { tls: { cert: made.paths.cert, key: made.paths.key } })
  const first = certificateNotAfter(await readFile(made.paths.cert, 'utf8'))!
  t.equal(
    sample(await httpsGet(`${hook.url}/metrics`, ca), 'neverpull_serving_certificate_expiration_timestamp_seconds'),
    first / 1000,
    'the certificate served at start',
  )

  const next = generateServing({
    ca: { cert: ca, key: await readFile(made.paths.caKey, 'utf8') },
    service: 'neverpull-guard',
    namespace: 'neverpull-system',
    hosts: ['127.0.0.1', 'localhost'],
    days: 5,
    now: new Date(),
  })
  await writeFileAtomic(made.paths.key, next.key, 0o600)
  await writeFileAtomic(made.paths.cert, next.cert, 0o644)
  const expected = certificateNotAfter(next.cert)! / 1000
  t.not(expected, first / 1000)
  // The watcher reloads within its debounce; wait for it without asserting on time.
  let seen: number | undefined
  for (let i = 0; i < 200 && seen !== expected; i++) {
    await sleep(50)
    seen = sample(
      await httpsGet(`${hook.url}/metrics`, ca),
      'neverpull_serving_certificate_expiration_timestamp_seconds',
    )
  }
  t.equal(seen, expected, "the reloaded certificate's notAfter")
})

t.test('certificateNotAfter', async (t) => {
  const dir = t.testdir()
  const made = await ensureCertificates({
    outDir: dir,
    service: 'neverpull-guard',
    namespace: 'neverpull-system',
    hosts: ['127.0.0.1'],
    days: 10,
    force: false,
    now: new Date(now),
  })
  const pem = await readFile(made.paths.cert, 'utf8')
  t.equal(certificateNotAfter(pem), Date.parse(new X509Certificate(pem).validTo))
  t.equal(certificateNotAfter(pem), Math.floor((now + 10 * 86_400_000) / 1000) * 1000, 'notAfter, to the second')
  t.equal(certificateNotAfter('not a certificate'), undefined)
})
