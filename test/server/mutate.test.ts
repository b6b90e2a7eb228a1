import Fastify from 'fastify'
import jsonpatch from 'fast-json-patch'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { webhookApp } from '../../src/server/app.js'
import { createMetrics } from '../../src/server/metrics.js'
import type { InventoryIndex } from '../../src/inventory/inventory-index.js'
import { exampleInventory, review, type FixtureObject } from '../helpers/fixtures.js'
import type { AdmissionResponse, AdmissionReviewReply } from '../../src/admission/review.js'
import { parseLogLine, type LogLine } from '../helpers/log-lines.js'

// The example inventory: myapp:dev is on node-a only; node-b is the other node a pod
// without tolerations may land on (node-c is tainted). So the captured generateName pod
// (one Never container, myapp:dev, no placement) is steered to node-a, 1 of 2 nodes.

const now = Date.parse('2026-11-21T06:00:00Z')

async function build(t: Test, options: { global?: boolean; label?: 'true' | 'false'; lines?: LogLine[] } = {}) {
  const inventory: InventoryIndex = exampleInventory(now)
  if (options.label !== undefined) inventory.setNamespaceSteer('default', options.label === 'true')
  const metrics = createMetrics({ inventory, now: () => now })
  const app = Fastify({ logger: false })
  const lines = options.lines
  const log =
    lines === undefined
      ? undefined
      : pino(
          { level: 'debug' },
          new Writable({
            write(chunk, _, cb) {
              lines.push(parseLogLine(chunk))
              cb()
            },
          }),
        )
  await app.register(webhookApp, {
    inventory,
    mode: 'enforce',
    metrics,
    ready: () => true,
    now: () => now,
    steer: { global: options.global ?? false, maxNodes: 100 },
    ...(log === undefined ? {} : { log }),
  })
  t.teardown(() => app.close())
  return app
}

function patchOf(response: AdmissionResponse): jsonpatch.Operation[] {
  t.equal(response.patchType, 'JSONPatch')
  return JSON.parse(Buffer.from(String(response.patch), 'base64').toString('utf8')) as jsonpatch.Operation[]
}

t.test('POST /mutate steers a pod in a labelled namespace, in the review version received', async (t) => {
  const lines: LogLine[] = []
  const app = await build(t, { label: 'true', lines })
  for (const fixture of ['pod-create-generatename', 'pod-create-review-v1beta1']) {
    const body = review(fixture)
    const res = await app.inject({ method: 'POST', url: '/mutate?timeout=3s', payload: body })
    t.equal(res.statusCode, 200)
    const reply = res.json<AdmissionReviewReply>()
    t.equal(reply.apiVersion, body['apiVersion'], `${fixture}: answered as ${body['apiVersion']}`)
    t.equal(reply.kind, 'AdmissionReview')
    t.equal(reply.response.uid, body['request'].uid)
    t.equal(reply.response.allowed, true)
    const pod = jsonpatch.applyPatch(
      jsonpatch.deepClone(body['request'].object) as FixtureObject,
      patchOf(reply.response),
      true,
    ).newDocument
    t.same(pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms, [
      { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-a'] }] },
    ])
    t.equal(pod.metadata.annotations?.['neverpull.dev/steered'], '1 of 2 eligible nodes')

    // The validating webhook then sees the steered pod: every eligible node has the image.
    const validated = review(fixture)
    validated['request'].object = pod
    const verdict = (
      await app.inject({ method: 'POST', url: '/validate', payload: validated })
    ).json<AdmissionReviewReply>()
    t.same(
      verdict.response,
      { uid: body['request'].uid, allowed: true },
      `${fixture}: the steered pod is allowed silently`,
    )

    // Without steering the same pod would have been warned about.
    const unsteered = (
      await app.inject({ method: 'POST', url: '/validate', payload: review(fixture) })
    ).json<AdmissionReviewReply>()
    t.match(unsteered.response.warnings?.join('\n'), /is on 1 of 2 eligible nodes \(node-a\)/)
  }
  const metrics = (await app.inject('/metrics')).body
  t.match(metrics, /neverpull_steered_pods_total\{namespace="default"\} 2/)
  const steered = lines.filter((l) => l['msg'] === 'admission steer')
  t.equal(steered.length, 2, 'one line per steered pod')
  t.equal(steered[0]?.['level'], 30)
  t.match(steered[0]?.['admission'], {
    uid: review('pod-create-generatename')['request'].uid,
    namespace: 'default',
    nodes: 1,
    eligible: 2,
    outcome: 'steered',
  })
})

t.test('POST /mutate leaves pods alone where steering is off, and dry runs uncounted', async (t) => {
  const cases: Array<[string, { global?: boolean; label?: 'true' | 'false' }, boolean]> = [
    ['no label, no --steer', {}, false],
    ['--steer', { global: true }, true],
    ['--steer, namespace labelled false', { global: true, label: 'false' }, false],
  ]
  for (const [what, options, steers] of cases) {
    const app = await build(t, options)
    const res = (
      await app.inject({ method: 'POST', url: '/mutate', payload: review('pod-create-generatename') })
    ).json<AdmissionReviewReply>()
    t.equal(res.response.allowed, true, what)
    t.equal(res.response.patch !== undefined, steers, `${what}: ${steers ? 'patched' : 'unchanged'}`)
  }
  const app = await build(t, { label: 'true' })
  const dry = (
    await app.inject({ method: 'POST', url: '/mutate', payload: review('pod-create-dryrun') })
  ).json<AdmissionReviewReply>()
  t.ok(dry.response.patch, 'a dry run shows the steered pod')
  t.notMatch(
    (await app.inject('/metrics')).body,
    /neverpull_steered_pods_total\{/,
    'but creates nothing, so is not counted',
  )
})

t.test('POST /mutate answers what it does not steer: other kinds, updates, bad reviews', async (t) => {
  const app = await build(t, { global: true })
  const deployment = (
    await app.inject({ method: 'POST', url: '/mutate', payload: review('deployment-create') })
  ).json<AdmissionReviewReply>()
  t.same(deployment.response, { uid: review('deployment-create')['request'].uid, allowed: true })
  const update = review('pod-create-generatename')
  update['request'].operation = 'UPDATE'
  update['request'].oldObject = update['request'].object
  t.equal(
    (await app.inject({ method: 'POST', url: '/mutate', payload: update })).json<AdmissionReviewReply>().response.patch,
    undefined,
  )
  const malformed = (
    await app.inject({
      method: 'POST',
      url: '/mutate',
      payload: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u1' } },
    })
  ).json<AdmissionReviewReply>()
  t.equal(malformed.response.uid, 'u1')
  t.equal(malformed.response.status?.code, 400)
  const bad = review('pod-create-generatename')
  Object.assign(bad['request'].object.spec, { containers: 'nope' })
  const badPod = (await app.inject({ method: 'POST', url: '/mutate', payload: bad })).json<AdmissionReviewReply>()
  t.same(
    badPod.response,
    { uid: bad['request'].uid, allowed: true },
    'a malformed pod is left to the validating webhook',
  )
})

t.test(
  'POST /validate: a workload in a steering namespace gets a notice, not the partial-presence warning',
  async (t) => {
    const deployment = review('deployment-create')
    deployment['request'].object.spec.template.spec.containers[0].image = 'myapp:dev'
    const plain = await build(t)
    const warned = (
      await plain.inject({ method: 'POST', url: '/validate', payload: deployment })
    ).json<AdmissionReviewReply>()
    t.match(
      (warned.response.warnings ?? []).join('\n'),
      /is on 1 of 2 eligible nodes \(node-a\), missing on node-b; pods placed elsewhere fail with ErrImageNeverPull/,
    )
    t.match((warned.response.warnings ?? []).join('\n'), /fix/i)
    const steering = await build(t, { label: 'true' })
    const noticed = (
      await steering.inject({ method: 'POST', url: '/validate', payload: deployment })
    ).json<AdmissionReviewReply>()
    t.equal(noticed.response.allowed, true)
    t.same(noticed.response.warnings, [
      'container "api": image "myapp:dev" (imagePullPolicy: Never) is on 1 of 2 eligible nodes (node-a); this namespace steers its pods to that node (neverpull.dev/steer)',
    ])
  },
)
