import t from 'tap'
import { CoreV1Api, CustomObjectsApi, PatchStrategy, Watch, setHeaderOptions } from '@kubernetes/client-node'
import { startFakeApiServer, type FakeApiServer } from './fake-apiserver.js'

async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

interface WatchEvent {
  type: string
  object: { kind?: string; code?: number; reason?: string; metadata?: { name?: string; resourceVersion?: string } }
}

/** Read a watch stream with plain fetch until `count` events arrived or the stream ended. */
async function readEvents(url: string, count: number, onOpen?: () => void): Promise<{ events: WatchEvent[]; ended: boolean }> {
  const controller = new AbortController()
  const res = await fetch(url, { signal: controller.signal })
  if (res.body === null) throw new Error('no body')
  onOpen?.()
  const events: WatchEvent[] = []
  const decoder = new TextDecoder()
  let buffer = ''
  const reader = res.body.getReader()
  let ended = false
  while (events.length < count) {
    const { value, done } = await reader.read()
    if (done) {
      ended = true
      break
    }
    buffer += decoder.decode(value, { stream: true })
    let nl: number
    while ((nl = buffer.indexOf('\n')) >= 0) {
      events.push(JSON.parse(buffer.slice(0, nl)) as WatchEvent)
      buffer = buffer.slice(nl + 1)
    }
  }
  controller.abort()
  return { events, ended }
}

const node = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name, labels },
  spec: {},
  status: { conditions: [{ type: 'Ready', status: 'True' }] },
})

let server: FakeApiServer
t.beforeEach(async () => {
  server = await startFakeApiServer({ historySize: 50 })
})
t.afterEach(async () => {
  await server.close()
})

t.test('list over plain fetch: kind, resourceVersion, metadata stamping, selectors, paging', async (t) => {
  server.put(node('a', { zone: 'x' }))
  server.put(node('b', { zone: 'y' }))
  server.put(node('c'))
  const res = await fetch(`${server.url}/api/v1/nodes`)
  t.equal(res.status, 200)
  const list = (await res.json()) as { kind: string; apiVersion: string; metadata: { resourceVersion: string }; items: Array<{ metadata: Record<string, unknown> }> }
  t.equal(list.kind, 'NodeList')
  t.equal(list.apiVersion, 'v1')
  t.equal(list.metadata.resourceVersion, String(server.resourceVersion))
  t.same(list.items.map((i) => i.metadata.name), ['a', 'b', 'c'])
  const first = list.items[0]?.metadata
  t.match(first, { uid: String, resourceVersion: String, creationTimestamp: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/ })
  t.ok(Number(list.items[2]?.metadata.resourceVersion) > Number(first?.resourceVersion), 'monotonic resourceVersion')

  const sel = async (q: string): Promise<unknown[]> => {
    const r = (await (await fetch(`${server.url}/api/v1/nodes?${q}`)).json()) as { items: Array<{ metadata: { name: string } }> }
    return r.items.map((i) => i.metadata.name)
  }
  t.same(await sel('labelSelector=zone%3Dx'), ['a'])
  t.same(await sel('labelSelector=zone'), ['a', 'b'])
  t.same(await sel('labelSelector=!zone'), ['c'])
  t.same(await sel('labelSelector=zone%20in%20(x,y),zone!=y'), ['a'])
  t.same(await sel('fieldSelector=metadata.name%3Db'), ['b'])

  const page1 = (await (await fetch(`${server.url}/api/v1/nodes?limit=2`)).json()) as { items: unknown[]; metadata: { continue?: string } }
  t.equal(page1.items.length, 2)
  t.type(page1.metadata.continue, 'string')
  const page2 = (await (await fetch(`${server.url}/api/v1/nodes?limit=2&continue=${page1.metadata.continue ?? ''}`)).json()) as {
    items: unknown[]
    metadata: { continue?: string }
  }
  t.equal(page2.items.length, 1)
  t.equal(page2.metadata.continue, undefined)
})

t.test('namespaced resources: per namespace and across all namespaces; 404 and 409 are Status objects', async (t) => {
  const dep = (ns: string, name: string) => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: ns }, spec: { replicas: 1 } })
  for (const [ns, name] of [['a', 'one'], ['b', 'two']] as const) {
    const res = await fetch(`${server.url}/apis/apps/v1/namespaces/${ns}/deployments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(dep(ns, name)),
    })
    t.equal(res.status, 201)
  }
  const all = (await (await fetch(`${server.url}/apis/apps/v1/deployments`)).json()) as { kind: string; items: unknown[] }
  t.equal(all.kind, 'DeploymentList')
  t.equal(all.items.length, 2)
  const inA = (await (await fetch(`${server.url}/apis/apps/v1/namespaces/a/deployments`)).json()) as { items: unknown[] }
  t.equal(inA.items.length, 1)

  const dup = await fetch(`${server.url}/apis/apps/v1/namespaces/a/deployments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(dep('a', 'one')),
  })
  t.equal(dup.status, 409)
  t.match(await dup.json(), { kind: 'Status', status: 'Failure', reason: 'AlreadyExists', code: 409 })

  const missing = await fetch(`${server.url}/apis/apps/v1/namespaces/a/deployments/nope`)
  t.equal(missing.status, 404)
  t.match(await missing.json(), { kind: 'Status', reason: 'NotFound', code: 404, message: 'deployments.apps "nope" not found' })

  const stale = await fetch(`${server.url}/apis/apps/v1/namespaces/a/deployments/one`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...dep('a', 'one'), metadata: { name: 'one', namespace: 'a', resourceVersion: '1' } }),
  })
  t.equal(stale.status, 409)
  t.match(await stale.json(), { reason: 'Conflict' })

  const del = await fetch(`${server.url}/apis/apps/v1/namespaces/b/deployments/two`, { method: 'DELETE' })
  t.equal(del.status, 200)
  t.equal(server.get('apps/v1', 'Deployment', 'two', 'b'), undefined)
  t.equal((await fetch(`${server.url}/apis/nope/v1/things`)).status, 404)
})

t.test('patch types and the status subresource', async (t) => {
  const base = `${server.url}/apis/neverpull.dev/v1alpha1/nodeimagesets`
  const patch = (path: string, type: string, body: string, q = '') =>
    fetch(`${base}/${path}${q}`, { method: 'PATCH', headers: { 'content-type': type }, body })

  const noManager = await patch('n1', 'application/apply-patch+yaml', 'apiVersion: neverpull.dev/v1alpha1\n')
  t.equal(noManager.status, 422)

  const yamlDoc = [
    'apiVersion: neverpull.dev/v1alpha1',
    'kind: NodeImageSet',
    'metadata:',
    '  name: n1',
    'spec:',
    '  nodeName: n1',
    '  images:',
    '  - id: sha256:aa',
    '    repoTags: [docker.io/library/nginx:1.27]',
  ].join('\n')
  const created = await patch('n1', 'application/apply-patch+yaml', yamlDoc, '?fieldManager=agent&force=true')
  t.equal(created.status, 201)
  t.match(await created.json(), { metadata: { name: 'n1', uid: String }, spec: { images: [{ id: 'sha256:aa' }] } })

  const applied = await patch('n1', 'application/apply-patch+yaml', JSON.stringify({ apiVersion: 'neverpull.dev/v1alpha1', kind: 'NodeImageSet', metadata: { name: 'n1', labels: { a: 'b' } } }), '?fieldManager=agent')
  t.equal(applied.status, 200)
  t.match(await applied.json(), { metadata: { labels: { a: 'b' } }, spec: { nodeName: 'n1' } })

  const merged = await patch('n1', 'application/merge-patch+json', JSON.stringify({ metadata: { labels: { a: null, c: 'd' } } }))
  t.same(((await merged.json()) as { metadata: { labels: unknown } }).metadata.labels, { c: 'd' })

  const strategic = await patch('n1', 'application/strategic-merge-patch+json', JSON.stringify({ spec: { runtime: { name: 'containerd' } } }))
  t.match(await strategic.json(), { spec: { runtime: { name: 'containerd' }, nodeName: 'n1' } })

  const jp = await patch('n1', 'application/json-patch+json', JSON.stringify([{ op: 'add', path: '/spec/images/-', value: { id: 'sha256:bb' } }, { op: 'remove', path: '/metadata/labels/c' }]))
  t.match(await jp.json(), { spec: { images: [{ id: 'sha256:aa' }, { id: 'sha256:bb' }] }, metadata: { labels: {} } })

  const ignoredStatus = await patch('n1', 'application/merge-patch+json', JSON.stringify({ status: { observedTime: '2025-01-01T00:00:00Z' } }))
  t.equal(((await ignoredStatus.json()) as { status?: unknown }).status, undefined, 'main resource ignores status')
  const status = await patch('n1/status', 'application/merge-patch+json', JSON.stringify({ status: { observedTime: '2025-01-01T00:00:00Z' }, spec: { images: [] } }))
  t.match(await status.json(), { status: { observedTime: '2025-01-01T00:00:00Z' }, spec: { images: [{ id: 'sha256:aa' }, { id: 'sha256:bb' }] } })

  t.equal((await patch('n1', 'application/xml', '<x/>')).status, 415)
  t.equal((await patch('nope', 'application/merge-patch+json', '{}')).status, 404)
  t.match(server.requests.at(-1), { method: 'PATCH', path: '/apis/neverpull.dev/v1alpha1/nodeimagesets/nope', contentType: 'application/merge-patch+json' })
  t.match(server.requests.find((r) => r.query.fieldManager === 'agent'), { query: { force: 'true' } })
})

t.test('watch over plain fetch: replay from resourceVersion, live events, 410 Expired after the history', async (t) => {
  server.put(node('a'))
  const rv = server.resourceVersion
  server.put(node('a', { changed: 'yes' }))
  server.put(node('b'))
  server.remove('v1', 'Node', 'b')
  const replay = await readEvents(`${server.url}/api/v1/nodes?watch=1&resourceVersion=${rv}`, 4, () => {
    setImmediate(() => server.put(node('c')))
  })
  t.same(
    replay.events.map((e) => `${e.type} ${e.object.metadata?.name ?? ''}`),
    ['MODIFIED a', 'ADDED b', 'DELETED b', 'ADDED c'],
  )
  const rvs = replay.events.map((e) => Number(e.object.metadata?.resourceVersion))
  t.same(rvs, [...rvs].sort((x, y) => x - y), 'events in resourceVersion order')

  const fromZero = await readEvents(`${server.url}/api/v1/nodes?watch=true`, 2)
  t.same(fromZero.events.map((e) => `${e.type} ${e.object.metadata?.name ?? ''}`), ['ADDED a', 'ADDED c'])

  const filtered = await readEvents(`${server.url}/api/v1/nodes?watch=1&resourceVersion=${server.resourceVersion}&labelSelector=role%3Dedge`, 2, () => {
    setImmediate(() => {
      server.put(node('a', { role: 'edge' }))
      server.put(node('a', { role: 'core' }))
    })
  })
  t.same(filtered.events.map((e) => e.type), ['ADDED', 'DELETED'], 'selector transitions become ADDED/DELETED')

  server.expireHistory()
  const expired = await readEvents(`${server.url}/api/v1/nodes?watch=1&resourceVersion=${rv}`, 5)
  t.ok(expired.ended, 'stream closed after the error')
  t.equal(expired.events.length, 1)
  t.match(expired.events[0], { type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: /too old resource version/ } })
})

t.test('bounded history: an old resourceVersion expires by itself', async (t) => {
  server.put(node('a'))
  const rv = server.resourceVersion
  for (let i = 0; i < 60; i++) server.put(node('a', { i: String(i) }))
  const expired = await readEvents(`${server.url}/api/v1/nodes?watch=1&resourceVersion=${rv}`, 1)
  t.match(expired.events[0], { type: 'ERROR', object: { code: 410 } })
})

t.test('bookmarks, latency and injected failures', async (t) => {
  const got = await readEvents(`${server.url}/api/v1/namespaces?watch=1&allowWatchBookmarks=true&resourceVersion=${server.resourceVersion}`, 1, () => {
    setImmediate(() => server.bookmark())
  })
  t.match(got.events[0], { type: 'BOOKMARK', object: { kind: 'Namespace', metadata: { resourceVersion: String(server.resourceVersion) } } })

  server.setLatency(50)
  const started = Date.now()
  await fetch(`${server.url}/api/v1/nodes`)
  t.ok(Date.now() - started >= 45, 'latency applied')
  server.setLatency(0)

  server.failNext(1, 503, (r) => r.path === '/api/v1/nodes')
  t.equal((await fetch(`${server.url}/api/v1/namespaces`)).status, 200)
  t.equal((await fetch(`${server.url}/api/v1/nodes`)).status, 503)
  t.equal((await fetch(`${server.url}/api/v1/nodes`)).status, 200)
})

t.test('client-node: CoreV1Api, CustomObjectsApi and Watch against the fake', async (t) => {
  const kc = server.kubeConfig()
  const core = kc.makeApiClient(CoreV1Api)
  server.put(node('n1', { 'kubernetes.io/hostname': 'n1' }))
  const nodes = await core.listNode()
  t.equal(nodes.items.length, 1)
  t.equal(nodes.items[0]?.metadata?.name, 'n1')
  t.equal(nodes.metadata?.resourceVersion, String(server.resourceVersion))

  await core.createNamespace({ body: { metadata: { name: 'team-a', labels: { 'neverpull.dev/mode': 'warn' } } } })
  const ns = await core.readNamespace({ name: 'team-a' })
  t.equal(ns.metadata?.labels?.['neverpull.dev/mode'], 'warn')
  await t.rejects(core.readNamespace({ name: 'nope' }), { code: 404 })

  await core.createNamespacedEvent({
    namespace: 'team-a',
    body: { metadata: { name: 'e1' }, involvedObject: { kind: 'Pod', name: 'p' }, reason: 'Test', message: 'hello' },
  })
  const events = await core.listNamespacedEvent({ namespace: 'team-a' })
  t.equal(events.items[0]?.message, 'hello')

  const custom = kc.makeApiClient(CustomObjectsApi)
  await custom.patchClusterCustomObject(
    {
      group: 'neverpull.dev',
      version: 'v1alpha1',
      plural: 'nodeimagesets',
      name: 'n1',
      body: { apiVersion: 'neverpull.dev/v1alpha1', kind: 'NodeImageSet', metadata: { name: 'n1' }, spec: { nodeName: 'n1', images: [] } },
      fieldManager: 'neverpull-agent',
      force: true,
    },
    setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
  )
  const listed = (await custom.listClusterCustomObject({ group: 'neverpull.dev', version: 'v1alpha1', plural: 'nodeimagesets' })) as {
    items: Array<{ metadata: { name: string } }>
  }
  t.same(listed.items.map((i) => i.metadata.name), ['n1'])
  t.match(server.requests.find((r) => r.method === 'PATCH'), { contentType: 'application/apply-patch+yaml', query: { fieldManager: 'neverpull-agent' } })

  const seen: string[] = []
  const done: unknown[] = []
  const watch = new Watch(kc)
  const controller = await watch.watch(
    '/api/v1/nodes',
    { resourceVersion: nodes.metadata?.resourceVersion },
    (type, obj: { metadata: { name: string } }) => seen.push(`${type} ${obj.metadata.name}`),
    (err) => done.push(err),
  )
  await waitFor('watch open', () => server.openWatches === 1)
  server.put(node('n2'))
  server.remove('v1', 'Node', 'n1')
  await waitFor('events', () => seen.length === 2)
  t.same(seen, ['ADDED n2', 'DELETED n1'])
  server.breakWatches()
  await waitFor('done after a broken stream', () => done.length === 1)
  t.ok(done[0] instanceof Error, `a cut stream reaches done() as an error: ${String(done[0])}`)
  controller.abort()
})
