import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { kubeConfigHttp } from '../../src/kube/http.js'
import { assess, AuditLedger, EVENT_REASON, MAX_EVENT_MESSAGE } from '../../src/audit/audit.js'
import { LeaseElector } from '../../src/audit/lease.js'
import { startAudit } from '../../src/audit/runner.js'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'
import { startInventoryWatch } from '../../src/inventory/watch.js'
import { buildIndex, NOW, runtimeImage } from '../helpers/inventory.js'
import { startFakeApiServer, type KubeObject } from '../helpers/fake-apiserver.js'

const APP = 'docker.io/library/myapp:1.0'

function pod(name: string, nodeName: string | undefined, image = 'myapp:1.0', extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop', uid: `uid-${name}`, ...extra },
    spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: 'app', image, imagePullPolicy: 'Never' }] },
    status: { phase: 'Running' },
  }
}

function deployment(name: string, image = 'myapp:1.0') {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'shop', uid: `uid-${name}` },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'app', image, imagePullPolicy: 'Never' }] },
      },
    },
  }
}

const target = (obj: ReturnType<typeof pod> | ReturnType<typeof deployment>) => ({
  apiVersion: obj.apiVersion,
  kind: obj.kind,
  namespace: obj.metadata.namespace,
  name: obj.metadata.name,
  uid: obj.metadata.uid,
  object: obj,
})

// KUBERNETES-FACTS §9: replicas: 0 and suspend: true create no pod at admission, so admission
// only warns; the audit keeps reporting them, since scaling up or resuming would fail.
t.test('assess: scaled-to-zero and suspended workloads whose image is missing are at risk', async (t) => {
  const known = buildIndex([
    { name: 'a', images: [APP] },
    { name: 'b', images: [] },
  ])
  const zero = deployment('idle', 'myapp:2.0') as ReturnType<typeof deployment> & { spec: { replicas?: number } }
  zero.spec.replicas = 0
  const risk = assess(known, target(zero), NOW)
  t.match(
    risk?.message,
    /^scaled to zero, and its imagePullPolicy: Never image is not on the nodes it may run on; scaling it up creates pods that fail with ErrImageNeverPull: container "app": image "myapp:2.0"/,
  )
  const cron = {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name: 'nightly', namespace: 'shop', uid: 'uid-nightly' },
    spec: {
      schedule: '0 3 * * *',
      suspend: true,
      jobTemplate: {
        spec: {
          template: {
            spec: {
              restartPolicy: 'OnFailure',
              containers: [{ name: 'app', image: 'myapp:2.0', imagePullPolicy: 'Never' }],
            },
          },
        },
      },
    },
  }
  const suspended = assess(
    known,
    { apiVersion: 'batch/v1', kind: 'CronJob', namespace: 'shop', name: 'nightly', uid: 'uid-nightly', object: cron },
    NOW,
  )
  t.match(
    suspended?.message,
    /^suspended, and its imagePullPolicy: Never image is not on the nodes it may run on; resuming it creates pods/,
  )
  zero.spec.template.spec.containers[0]!.image = 'myapp:1.0'
  t.equal(assess(known, target(zero), NOW), null, 'a scaled-to-zero workload whose image is everywhere is fine')
})

t.test('assess: a bound pod whose image left its node, a workload whose image left every node', async (t) => {
  const index = buildIndex([{ name: 'a', images: [APP] }, { name: 'b', images: [] }, { name: 'c' }])
  t.equal(assess(index, target(pod('ok', 'a')), NOW), null, 'present: nothing to report')
  const risk = assess(index, target(pod('gone', 'b')), NOW)
  t.ok(risk)
  t.match(
    risk?.message,
    /^the image of a container with imagePullPolicy: Never is gone from node b; the next container restart fails with ErrImageNeverPull: container "app": image "myapp:1.0"/,
  )
  t.equal(assess(index, target(pod('stale', 'c')), NOW), null, 'unknown is never a finding')
  t.equal(
    assess(index, target(deployment('web')), NOW),
    null,
    'a workload with the image on one of its nodes is a warning at admission, not an audit finding',
  )
  t.equal(
    assess(index, target(deployment('web', 'myapp:2.0')), NOW),
    null,
    'node c has no image list: unknown, not at risk',
  )
  const known = buildIndex([
    { name: 'a', images: [APP] },
    { name: 'b', images: [] },
  ])
  const lost = assess(known, target(deployment('web', 'myapp:2.0')), NOW)
  t.match(lost?.message, /new pods fail with ErrImageNeverPull: container "app": image "myapp:2.0"/)
  const mirror = pod('static', 'b', 'myapp:1.0', { annotations: { 'kubernetes.io/config.mirror': 'x' } })
  t.ok(assess(index, target(mirror), NOW), 'mirror pods are audited too')
  const many = pod('many', 'b')
  many.spec.containers = Array.from({ length: 40 }, (_, i) => ({
    name: `c${i}`,
    image: `myapp:${i}.0-${'x'.repeat(40)}`,
    imagePullPolicy: 'Never',
  }))
  t.ok((assess(index, target(many), NOW)?.message.length ?? 0) <= MAX_EVENT_MESSAGE)
})

t.test('ledger: one report per object and finding until it changes or clears', async (t) => {
  const index = buildIndex([{ name: 'b', images: [] }])
  const ledger = new AuditLedger()
  const risk = assess(index, target(pod('p', 'b')), NOW)!
  t.ok(ledger.shouldReport(risk))
  t.notOk(ledger.shouldReport(risk), 'same finding again: no new event')
  const changed = assess(index, target(pod('p', 'b', 'myapp:2.0')), NOW)!
  t.ok(ledger.shouldReport(changed), 'a different finding is reported')
  ledger.settle(new Set())
  t.equal(ledger.size, 0)
  t.ok(ledger.shouldReport(changed), 'after it cleared, a relapse is reported again')
})

t.test('against the API server: removing an image yields exactly one event per affected object', async (t) => {
  const server = await startFakeApiServer()
  t.teardown(() => server.close())
  const node = (name: string) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name } },
    status: { conditions: [{ type: 'Ready', status: 'True' }] },
  })
  const nis = (name: string, images: string[]) => ({
    apiVersion: 'neverpull.dev/v1alpha1',
    kind: 'NodeImageSet',
    metadata: { name },
    spec: { nodeName: name, images: images.map(runtimeImage) },
    status: { observedTime: new Date().toISOString() },
  })
  server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } })
  server.put(node('a'))
  server.put(node('b'))
  server.put(nis('a', [APP]))
  server.put(nis('b', [APP]))
  server.put(pod('on-a', 'a'))
  server.put(pod('on-b', 'b'))
  server.put(pod('done', 'b'))
  server.put({ ...pod('finished', 'b'), status: { phase: 'Succeeded' } })
  server.put(deployment('web'))
  server.put({
    ...pod('plain', 'b'),
    spec: { nodeName: 'b', containers: [{ name: 'app', image: 'myapp:9', imagePullPolicy: 'IfNotPresent' }] },
  })

  const inventory = new InventoryIndex({ staleAfterMs: 15 * 60_000 })
  const silent = { debug() {}, info() {}, warn() {}, error() {} }
  const errors: unknown[] = []
  const log = { ...silent, error: (obj: unknown, msg?: string) => void errors.push(msg ?? obj) }
  const watch = startInventoryWatch({ http: kubeConfigHttp(server.kubeConfig()), sink: inventory, log: silent })
  t.teardown(() => watch.close())
  await watch.synced
  const passes: number[] = []
  const audit = startAudit({
    http: kubeConfigHttp(server.kubeConfig()),
    inventory,
    log,
    namespace: 'neverpull-system',
    identity: 'replica-1',
    intervalMs: 60 * 60_000,
    leaseDurationMs: 900,
    minGapMs: 0,
    pageSize: 2,
    onPass: (p) => passes.push(p.events),
  })
  t.teardown(() => audit.close())

  type AuditEvent = {
    reason?: string
    type?: string
    message?: string
    involvedObject: { kind: string; name: string; uid?: string }
  }
  const events = () =>
    server
      .list('v1', 'Event', 'shop')
      .filter((e): e is typeof e & AuditEvent => (e as { reason?: string }).reason === EVENT_REASON)
  const until = async (what: string, ok: () => boolean, ms = 10_000) => {
    const end = Date.now() + ms
    while (!ok()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
      await sleep(50)
    }
  }
  await until('the first pass', () => passes.length >= 1)
  t.equal(events().length, 0, 'nothing at risk: no events')
  t.ok(audit.isLeader(), 'the only replica holds the lease')
  // The in-process API server decodes Lease times as the real one: MicroTime, six digits.
  const lease = server.get('coordination.k8s.io/v1', 'Lease', 'neverpull-guard-audit', 'neverpull-system') as {
    spec: Record<string, unknown>
  }
  t.match(lease.spec, {
    holderIdentity: 'replica-1',
    acquireTime: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/,
    renewTime: /\.\d{6}Z$/,
  })

  server.put(nis('b', []))
  await until('a pass after the change', () => passes.length >= 2 && events().length >= 2)
  await sleep(300)
  const got = events()
    .map((e) => `${e.involvedObject.kind}/${e.involvedObject.name}`)
    .sort()
  t.same(
    got,
    ['Pod/done', 'Pod/on-b'],
    'only the running Never pods bound to b; not the finished one, not the IfNotPresent one',
  )
  const e = events().find((x) => x.involvedObject.name === 'on-b')!
  t.equal(e.type, 'Warning')
  t.equal(e.involvedObject.uid, 'uid-on-b')
  t.match(e.message, /gone from node b/)

  server.put(nis('a', []))
  await until('the deployment event', () => events().some((x) => x.involvedObject.kind === 'Deployment'))
  const before = events().length
  t.equal(events().filter((x) => x.involvedObject.kind === 'Deployment').length, 1, 'one event on the workload')
  t.equal(events().filter((x) => x.involvedObject.name === 'on-a').length, 1, 'one on the pod on a')

  const pass = await audit.runOnce()
  t.equal(pass.events, 0, 'another pass with the same findings records no new event')
  t.equal(events().length, before)
  t.equal(pass.atRisk, 4)
  t.same(errors, [], 'no audit round failed, no event refused')
  t.match(e, {
    firstTimestamp: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    lastTimestamp: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    count: 1,
  })
  t.ok(
    server.requests.filter((r) => r.path.endsWith('/leases/neverpull-guard-audit') && r.method === 'PUT').length >= 1,
    'the lease was renewed',
  )
})

t.test('lease: MicroTimes written, both forms read, another holder respected until it lapses', async (t) => {
  const server = await startFakeApiServer()
  t.teardown(() => server.close())
  const http = kubeConfigHttp(server.kubeConfig())
  const at = Date.parse('2026-11-30T14:00:00.406Z')
  const elector = (identity: string) =>
    new LeaseElector({ http, namespace: 'ns', name: 'audit', identity, durationMs: 15_000 })
  const stored = () =>
    server.get<KubeObject & { spec: Record<string, unknown> }>('coordination.k8s.io/v1', 'Lease', 'audit', 'ns')!

  const one = elector('one')
  t.equal(await one.tick(at), true, 'creates the lease')
  t.match(stored().spec, {
    holderIdentity: 'one',
    acquireTime: '2026-11-30T14:00:00.406000Z',
    renewTime: '2026-11-30T14:00:00.406000Z',
    leaseTransitions: 0,
  })
  t.equal(await one.tick(at + 5_000), true, 'renews it')
  t.equal(stored().spec.renewTime, '2026-11-30T14:00:05.406000Z')
  t.equal(stored().spec.acquireTime, '2026-11-30T14:00:00.406000Z', 'a renewal keeps acquireTime')

  const two = elector('two')
  t.equal(await two.tick(at + 10_000), false, 'a fresh lease of another holder is respected')
  t.equal(await two.tick(at + 20_406), true, 'one lapsed (renewed at :05.406, 15 s): taken over')
  t.match(stored().spec, { holderIdentity: 'two', acquireTime: '2026-11-30T14:00:20.812000Z', leaseTransitions: 1 })

  // A lease some older writer left with millisecond times (stored as it is, past the decoder)
  // still reads: its holder is respected while it is fresh.
  const current = stored()
  server.put({
    ...current,
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    spec: { ...current.spec, holderIdentity: 'old', renewTime: '2026-11-30T14:01:00.5Z' },
  })
  t.equal(await one.tick(Date.parse('2026-11-30T14:01:10Z')), false, 'millisecond renewTime read: still fresh')
  t.equal(await one.tick(Date.parse('2026-11-30T14:01:16Z')), true, 'and lapsed 15 s later')
  t.equal(stored().spec.renewTime, '2026-11-30T14:01:16.000000Z')

  await one.release()
  t.equal(stored().spec.holderIdentity, '', 'released for the next replica')
})
