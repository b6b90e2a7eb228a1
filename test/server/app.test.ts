import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { webhookApp } from '../../src/server/app.js'
import { createMetrics } from '../../src/server/metrics.js'
import { exampleInventory, review } from '../helpers/fixtures.js'

const now = Date.parse('2026-11-21T06:00:00Z')

async function build(t: Test, ready = true) {
  const inventory = exampleInventory(now)
  const metrics = createMetrics({ inventory, now: () => now })
  const app = Fastify({ logger: false })
  await app.register(webhookApp, { inventory, mode: 'enforce', metrics, ready: () => ready, now: () => now })
  t.teardown(() => app.close())
  return app
}

t.test('POST /validate answers real reviews', async (t) => {
  const app = await build(t)
  const body = review('deployment-update-image')
  const res = await app.inject({ method: 'POST', url: '/validate?timeout=10s', payload: body })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /application\/json/)
  const reply = res.json()
  t.equal(reply.apiVersion, 'admission.k8s.io/v1')
  t.equal(reply.response.uid, body['request'].uid)
  t.equal(reply.response.allowed, false)
  t.match(reply.response.status.message, /registry.local:5000\/team\/api:1.5.0/)
})

t.test('transport errors are clear 4xx AdmissionReviews, never an HTML page', async (t) => {
  const app = await build(t)
  const cases: Array<[string, Record<string, unknown>, number, RegExp]> = [
    ['non-JSON', { payload: '{"apiVersion": ', headers: { 'content-type': 'application/json' } }, 400, /not valid JSON/],
    ['wrong content type', { payload: 'hello', headers: { 'content-type': 'text/plain' } }, 415, /Content-Type must be application\/json/],
    ['empty body', { payload: '', headers: { 'content-type': 'application/json' } }, 400, /empty body/],
    ['oversized', { payload: '{"a":"' + 'x'.repeat(7 * 1024 * 1024) + '"}', headers: { 'content-type': 'application/json' } }, 413, /larger than 7340032 bytes/],
  ]
  for (const [name, req, status, pattern] of cases) {
    const res = await app.inject({ method: 'POST', url: '/validate', ...req })
    t.equal(res.statusCode, status, name)
    const reply = res.json()
    t.equal(reply.kind, 'AdmissionReview', name)
    t.equal(reply.response.allowed, false, name)
    t.equal(reply.response.status.code, status, name)
    t.match(reply.response.status.message, pattern, name)
  }
  const notFound = await app.inject({ method: 'GET', url: '/nope' })
  t.equal(notFound.statusCode, 404)
  t.match(notFound.json().message, /POST \/validate/)
})

t.test('a body just under the limit is accepted', async (t) => {
  const app = await build(t)
  const body = review('pod-create')
  body['request'].object.metadata.annotations.filler = 'x'.repeat(6 * 1024 * 1024)
  const res = await app.inject({ method: 'POST', url: '/validate', payload: body })
  t.equal(res.statusCode, 200)
  t.equal(res.json().response.allowed, true)
})

t.test('health, readiness and metrics', async (t) => {
  const app = await build(t)
  t.equal((await app.inject('/healthz')).statusCode, 200)
  t.equal((await app.inject('/readyz')).statusCode, 200)
  await app.inject({ method: 'POST', url: '/validate', payload: review('deployment-update-image') })
  await app.inject({ method: 'POST', url: '/validate', payload: review('pod-create') })
  await app.inject({ method: 'POST', url: '/validate', payload: { nope: 1 } })
  const metrics = await app.inject('/metrics')
  t.equal(metrics.statusCode, 200)
  t.match(metrics.headers['content-type'], /text\/plain/)
  t.match(metrics.body, /neverpull_admission_requests_total\{kind="Deployment",operation="UPDATE",decision="deny"\} 1/)
  t.match(metrics.body, /neverpull_admission_requests_total\{kind="Pod",operation="CREATE",decision="allow"\} 1/)
  t.match(metrics.body, /neverpull_admission_requests_total\{kind="unknown",operation="unknown",decision="invalid"\} 1/)
  t.match(metrics.body, /neverpull_admission_duration_seconds_bucket/)
  t.match(metrics.body, /neverpull_inventory_nodes 3/)
  t.match(metrics.body, /neverpull_inventory_image_sets 3/)
  t.match(metrics.body, /neverpull_findings_total\{reason="missing",severity="deny",mode="enforce"\} 1/)
})

t.test('not ready until the inventory is loaded', async (t) => {
  const app = await build(t, false)
  const res = await app.inject('/readyz')
  t.equal(res.statusCode, 503)
  t.match(res.json().message, /inventory not loaded/)
})
