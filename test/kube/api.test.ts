import t from 'tap'
import {
  applyObject,
  createEvent,
  createObject,
  getObject,
  listPages,
  namespacedPath,
  replaceObject,
  toListPage,
} from '../../src/kube/api.js'
import { kubeConfigHttp, type KubeHttp } from '../../src/kube/http.js'
import { ApiStatusError } from '../../src/kube/status.js'
import { startAudit } from '../../src/audit/runner.js'
import { buildIndex, NOW } from '../helpers/inventory.js'
import { startFakeApiServer } from '../helpers/fake-apiserver.js'

// The access layer (src/kube/api.ts) against the in-process apiserver: what a caller gets
// back, and what a refusal looks like.

t.test('paths of namespaced objects, core and grouped', (t) => {
  t.equal(namespacedPath('v1', 'shop', 'events'), '/api/v1/namespaces/shop/events')
  t.equal(
    namespacedPath('coordination.k8s.io/v1', 'ns', 'leases', 'a b'),
    '/apis/coordination.k8s.io/v1/namespaces/ns/leases/a%20b',
  )
  t.end()
})

t.test("list pages: Go's null items, continue tokens, bad items refused", (t) => {
  t.same(toListPage({ metadata: { resourceVersion: '7' }, items: null }), {
    items: [],
    resourceVersion: '7',
    continue: '',
  })
  t.same(toListPage({ metadata: { resourceVersion: '7', continue: 'c' }, items: [1] }), {
    items: [1],
    resourceVersion: '7',
    continue: 'c',
  })
  t.throws(() => toListPage({ metadata: {}, items: {} }), /items is not an array/)
  t.end()
})

t.test('get, create, replace, apply and events over a kubeconfig; refusals are ApiStatusErrors', async (t) => {
  const server = await startFakeApiServer()
  t.teardown(() => server.close())
  const http = kubeConfigHttp(server.kubeConfig())

  const missing = await getObject(http, '/api/v1/nodes/nope').catch((err: unknown) => err)
  t.ok(missing instanceof ApiStatusError, 'a 404 is an ApiStatusError')
  t.match(missing, { code: 404, reason: 'NotFound', message: /^404 NotFound: .*nope/ })

  const leases = namespacedPath('coordination.k8s.io/v1', 'ns', 'leases')
  const created = await createObject(http, leases, {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'l', namespace: 'ns' },
    spec: { holderIdentity: 'a' },
  })
  t.match(created, { metadata: { name: 'l', resourceVersion: /./ } })
  const again = await createObject(http, leases, {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'l', namespace: 'ns' },
  }).catch((e: unknown) => e)
  t.match(again, { code: 409, reason: 'AlreadyExists' }, 'creating twice: 409 AlreadyExists')

  const read = await getObject(http, `${leases}/l`)
  const replaced = await replaceObject(http, `${leases}/l`, { ...read, spec: { holderIdentity: 'b' } })
  t.match(replaced, { spec: { holderIdentity: 'b' } })
  const stale = await replaceObject(http, `${leases}/l`, { ...read, spec: { holderIdentity: 'c' } }).catch(
    (e: unknown) => e,
  )
  t.match(stale, { code: 409, reason: 'Conflict' }, 'a write from an old resourceVersion: 409 Conflict')

  server.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', uid: 'u' } })
  const applied = await applyObject(
    http,
    '/apis/neverpull.dev/v1alpha1/nodeimagesets/node-a',
    {
      apiVersion: 'neverpull.dev/v1alpha1',
      kind: 'NodeImageSet',
      metadata: { name: 'node-a' },
      spec: { nodeName: 'node-a', images: [] },
    },
    'test-manager',
  )
  t.match(applied, { metadata: { name: 'node-a' }, spec: { nodeName: 'node-a' } })
  t.match(server.requests.at(-1), { method: 'PATCH', contentType: 'application/apply-patch+yaml' })
  t.same(server.requests.at(-1)?.query, { fieldManager: 'test-manager', force: 'true' })

  await createEvent(http, {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: 'e1', namespace: 'shop' },
    reason: 'R',
    message: 'm',
  })
  t.match(server.list('v1', 'Event', 'shop'), [{ metadata: { name: 'e1' }, reason: 'R' }])
})

t.test('listPages walks every page with limit and continue', async (t) => {
  const server = await startFakeApiServer()
  t.teardown(() => server.close())
  for (const n of ['a', 'b', 'c', 'd', 'e']) server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n } })
  const http = kubeConfigHttp(server.kubeConfig())
  const sizes: number[] = []
  const names: string[] = []
  for await (const page of listPages(http, '/api/v1/namespaces', 2)) {
    sizes.push(page.items.length)
    for (const item of page.items) names.push((item as { metadata: { name: string } }).metadata.name)
  }
  t.same(sizes, [2, 2, 1], 'three pages of at most 2')
  t.same(names, ['a', 'b', 'c', 'd', 'e'])
  t.same(
    server.requests.map((r) => [r.query['limit'], r.query['continue'] !== undefined]),
    [
      ['2', false],
      ['2', true],
      ['2', true],
    ],
    'each page asked with limit, the next ones with the continue token',
  )
})

t.test('the audit on 1.19/1.20: CronJobs listed from batch/v1beta1 when batch/v1 has none', async (t) => {
  const server = await startFakeApiServer()
  t.teardown(() => server.close())
  server.put({
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name: 'nightly', namespace: 'shop', uid: 'uid-nightly' },
    spec: {
      schedule: '0 3 * * *',
      jobTemplate: {
        spec: {
          template: {
            spec: {
              restartPolicy: 'OnFailure',
              containers: [{ name: 'app', image: 'myapp:9', imagePullPolicy: 'Never' }],
            },
          },
        },
      },
    },
  })
  const real = kubeConfigHttp(server.kubeConfig())
  // An apiserver that serves CronJobs only as batch/v1beta1 (the fake's batch/v1 stands in for it).
  const old: KubeHttp = {
    server: real.server,
    request: (req) => {
      if (req.path.startsWith('/apis/batch/v1/cronjobs')) {
        return Promise.resolve({
          status: 404,
          body: '{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}',
        })
      }
      return real.request({ ...req, path: req.path.replace('/apis/batch/v1beta1/', '/apis/batch/v1/') })
    },
    open: (req) => real.open(req),
  }
  const inventory = buildIndex([{ name: 'a', images: [] }])
  const silent = { debug() {}, info() {}, warn() {}, error() {} }
  const audit = startAudit({
    http: old,
    inventory,
    log: silent,
    namespace: 'neverpull-system',
    identity: 'x',
    intervalMs: 3_600_000,
    now: () => NOW,
  })
  t.teardown(() => audit.close())
  const pass = await audit.runOnce()
  t.equal(pass.byKind['CronJob'], 1, 'the CronJob was listed and found at risk')
  const paths = server.requests.map((r) => r.path)
  t.ok(
    paths.some((p) => p.startsWith('/apis/batch/v1/cronjobs')),
    'listed through the fallback path',
  )
})
