import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  Watch,
  setHeaderOptions,
} from '@kubernetes/client-node'
import { startFakeApiServer, type FakeApiServer } from './fake-apiserver.js'
import { formatGoTime, parseGoTime, RFC3339, RFC3339_MICRO } from './go-time.js'

async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

interface WatchEvent {
  type: string
  object: { kind?: string; code?: number; reason?: string; metadata?: { name?: string; resourceVersion?: string } }
}

/** Read a watch stream with plain fetch until `count` events arrived or the stream ended. */
async function readEvents(
  url: string,
  count: number,
  onOpen?: () => void,
): Promise<{ events: WatchEvent[]; ended: boolean }> {
  const controller = new AbortController()
  const res = await fetch(url, { signal: controller.signal })
  if (res.body === null) throw new Error('no body')
  onOpen?.()
  const events: WatchEvent[] = []
  const decoder = new TextDecoder()
  let buffer = ''
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
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
  const list = (await res.json()) as {
    kind: string
    apiVersion: string
    metadata: { resourceVersion: string }
    items: Array<{ metadata: Record<string, unknown> }>
  }
  t.equal(list.kind, 'NodeList')
  t.equal(list.apiVersion, 'v1')
  t.equal(list.metadata.resourceVersion, String(server.resourceVersion))
  t.same(
    list.items.map((i) => i.metadata.name),
    ['a', 'b', 'c'],
  )
  const first = list.items[0]?.metadata
  t.match(first, { uid: String, resourceVersion: String, creationTimestamp: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/ })
  t.ok(Number(list.items[2]?.metadata.resourceVersion) > Number(first?.resourceVersion), 'monotonic resourceVersion')

  const sel = async (q: string): Promise<unknown[]> => {
    const r = (await (await fetch(`${server.url}/api/v1/nodes?${q}`)).json()) as {
      items: Array<{ metadata: { name: string } }>
    }
    return r.items.map((i) => i.metadata.name)
  }
  t.same(await sel('labelSelector=zone%3Dx'), ['a'])
  t.same(await sel('labelSelector=zone'), ['a', 'b'])
  t.same(await sel('labelSelector=!zone'), ['c'])
  t.same(await sel('labelSelector=zone%20in%20(x,y),zone!=y'), ['a'])
  t.same(await sel('fieldSelector=metadata.name%3Db'), ['b'])

  const page1 = (await (await fetch(`${server.url}/api/v1/nodes?limit=2`)).json()) as {
    items: unknown[]
    metadata: { continue?: string }
  }
  t.equal(page1.items.length, 2)
  t.type(page1.metadata.continue, 'string')
  const page2 = (await (
    await fetch(`${server.url}/api/v1/nodes?limit=2&continue=${page1.metadata.continue ?? ''}`)
  ).json()) as {
    items: unknown[]
    metadata: { continue?: string }
  }
  t.equal(page2.items.length, 1)
  t.equal(page2.metadata.continue, undefined)
})

t.test('namespaced resources: per namespace and across all namespaces; 404 and 409 are Status objects', async (t) => {
  const dep = (ns: string, name: string) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns },
    spec: { replicas: 1 },
  })
  for (const [ns, name] of [
    ['a', 'one'],
    ['b', 'two'],
  ] as const) {
    const res = await fetch(`${server.url}/apis/apps/v1/namespaces/${ns}/deployments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(dep(ns, name)),
    })
    t.equal(res.status, 201)
  }
  const all = (await (await fetch(`${server.url}/apis/apps/v1/deployments`)).json()) as {
    kind: string
    items: unknown[]
  }
  t.equal(all.kind, 'DeploymentList')
  t.equal(all.items.length, 2)
  const inA = (await (await fetch(`${server.url}/apis/apps/v1/namespaces/a/deployments`)).json()) as {
    items: unknown[]
  }
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
  t.match(await missing.json(), {
    kind: 'Status',
    reason: 'NotFound',
    code: 404,
    message: 'deployments.apps "nope" not found',
  })

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

  const applied = await patch(
    'n1',
    'application/apply-patch+yaml',
    JSON.stringify({
      apiVersion: 'neverpull.dev/v1alpha1',
      kind: 'NodeImageSet',
      metadata: { name: 'n1', labels: { a: 'b' } },
    }),
    '?fieldManager=agent',
  )
  t.equal(applied.status, 200)
  t.match(await applied.json(), { metadata: { labels: { a: 'b' } }, spec: { nodeName: 'n1' } })

  const merged = await patch(
    'n1',
    'application/merge-patch+json',
    JSON.stringify({ metadata: { labels: { a: null, c: 'd' } } }),
  )
  t.same(((await merged.json()) as { metadata: { labels: unknown } }).metadata.labels, { c: 'd' })

  const strategic = await patch(
    'n1',
    'application/strategic-merge-patch+json',
    JSON.stringify({ spec: { runtime: { name: 'containerd' } } }),
  )
  t.match(await strategic.json(), { spec: { runtime: { name: 'containerd' }, nodeName: 'n1' } })

  const jp = await patch(
    'n1',
    'application/json-patch+json',
    JSON.stringify([
      { op: 'add', path: '/spec/images/-', value: { id: 'sha256:bb' } },
      { op: 'remove', path: '/metadata/labels/c' },
    ]),
  )
  t.match(await jp.json(), { spec: { images: [{ id: 'sha256:aa' }, { id: 'sha256:bb' }] }, metadata: { labels: {} } })

  const ignoredStatus = await patch(
    'n1',
    'application/merge-patch+json',
    JSON.stringify({ status: { observedTime: '2025-01-01T00:00:00Z' } }),
  )
  t.equal(((await ignoredStatus.json()) as { status?: unknown }).status, undefined, 'main resource ignores status')
  const status = await patch(
    'n1/status',
    'application/merge-patch+json',
    JSON.stringify({ status: { observedTime: '2025-01-01T00:00:00Z' }, spec: { images: [] } }),
  )
  t.match(await status.json(), {
    status: { observedTime: '2025-01-01T00:00:00Z' },
    spec: { images: [{ id: 'sha256:aa' }, { id: 'sha256:bb' }] },
  })

  t.equal((await patch('n1', 'application/xml', '<x/>')).status, 415)
  t.equal((await patch('nope', 'application/merge-patch+json', '{}')).status, 404)
  t.match(server.requests.at(-1), {
    method: 'PATCH',
    path: '/apis/neverpull.dev/v1alpha1/nodeimagesets/nope',
    contentType: 'application/merge-patch+json',
  })
  t.match(
    server.requests.find((r) => r.query.fieldManager === 'agent'),
    { query: { force: 'true' } },
  )
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
  t.same(
    rvs,
    [...rvs].sort((x, y) => x - y),
    'events in resourceVersion order',
  )

  const fromZero = await readEvents(`${server.url}/api/v1/nodes?watch=true`, 2)
  t.same(
    fromZero.events.map((e) => `${e.type} ${e.object.metadata?.name ?? ''}`),
    ['ADDED a', 'ADDED c'],
  )

  const filtered = await readEvents(
    `${server.url}/api/v1/nodes?watch=1&resourceVersion=${server.resourceVersion}&labelSelector=role%3Dedge`,
    2,
    () => {
      setImmediate(() => {
        server.put(node('a', { role: 'edge' }))
        server.put(node('a', { role: 'core' }))
      })
    },
  )
  t.same(
    filtered.events.map((e) => e.type),
    ['ADDED', 'DELETED'],
    'selector transitions become ADDED/DELETED',
  )

  server.expireHistory()
  const expired = await readEvents(`${server.url}/api/v1/nodes?watch=1&resourceVersion=${rv}`, 5)
  t.ok(expired.ended, 'stream closed after the error')
  t.equal(expired.events.length, 1)
  t.match(expired.events[0], {
    type: 'ERROR',
    object: { kind: 'Status', code: 410, reason: 'Expired', message: /too old resource version/ },
  })
})

t.test('bounded history: an old resourceVersion expires by itself', async (t) => {
  server.put(node('a'))
  const rv = server.resourceVersion
  for (let i = 0; i < 60; i++) server.put(node('a', { i: String(i) }))
  const expired = await readEvents(`${server.url}/api/v1/nodes?watch=1&resourceVersion=${rv}`, 1)
  t.match(expired.events[0], { type: 'ERROR', object: { code: 410 } })
})

t.test('bookmarks, latency and injected failures', async (t) => {
  const got = await readEvents(
    `${server.url}/api/v1/namespaces?watch=1&allowWatchBookmarks=true&resourceVersion=${server.resourceVersion}`,
    1,
    () => {
      setImmediate(() => server.bookmark())
    },
  )
  t.match(got.events[0], {
    type: 'BOOKMARK',
    object: { kind: 'Namespace', metadata: { resourceVersion: String(server.resourceVersion) } },
  })

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
      body: {
        apiVersion: 'neverpull.dev/v1alpha1',
        kind: 'NodeImageSet',
        metadata: { name: 'n1' },
        spec: { nodeName: 'n1', images: [] },
      },
      fieldManager: 'neverpull-agent',
      force: true,
    },
    setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
  )
  const listed = (await custom.listClusterCustomObject({
    group: 'neverpull.dev',
    version: 'v1alpha1',
    plural: 'nodeimagesets',
  })) as {
    items: Array<{ metadata: { name: string } }>
  }
  t.same(
    listed.items.map((i) => i.metadata.name),
    ['n1'],
  )
  t.match(
    server.requests.find((r) => r.method === 'PATCH'),
    { contentType: 'application/apply-patch+yaml', query: { fieldManager: 'neverpull-agent' } },
  )

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

const KUBELET_FIXTURES = new URL('../fixtures/kubelet-1.19/', import.meta.url)
const kubeletFixture = (name: string): string => readFileSync(new URL(name, KUBELET_FIXTURES), 'utf8')

t.test('Go time.Parse for RFC3339 and RFC3339Micro: what it accepts and its words for what it does not', (t) => {
  const micro = (s: string) => parseGoTime(RFC3339_MICRO, s)
  const time = (s: string) => parseGoTime(RFC3339, s)
  const err = (r: ReturnType<typeof micro>) => (r.ok ? 'ok' : r.error)
  const L = '"2006-01-02T15:04:05.000000Z07:00"'
  t.equal(
    err(micro('2026-11-30T14:22:25.058Z')),
    `parsing time "2026-11-30T14:22:25.058Z" as ${L}: cannot parse ".058Z" as ".000000"`,
  )
  t.equal(
    err(micro('2026-11-30T14:22:25Z')),
    `parsing time "2026-11-30T14:22:25Z" as ${L}: cannot parse "Z" as ".000000"`,
  )
  t.equal(
    err(micro('2026-11-30T14:22:25.058000000Z')),
    `parsing time "2026-11-30T14:22:25.058000000Z" as ${L}: cannot parse "000Z" as "Z07:00"`,
  )
  t.equal(
    err(micro('2026-11-30 14:22:25.058000Z')),
    `parsing time "2026-11-30 14:22:25.058000Z" as ${L}: cannot parse " 14:22:25.058000Z" as "T"`,
  )
  t.equal(err(micro('2026-13-30T14:22:25.058000Z')), 'parsing time "2026-13-30T14:22:25.058000Z": month out of range')
  t.equal(err(micro('2026-02-30T14:22:25.058000Z')), 'parsing time "2026-02-30T14:22:25.058000Z": day out of range')
  t.equal(
    err(micro('2026-11-30T14:22:25.058000Zjunk')),
    'parsing time "2026-11-30T14:22:25.058000Zjunk": extra text: "junk"',
  )
  t.same(micro('2026-11-30T14:22:25.058123Z'), {
    ok: true,
    time: { seconds: Date.parse('2026-11-30T14:22:25Z') / 1000, nanos: 58_123_000 },
  })
  const offset = micro('2026-11-30T16:22:25.058123+02:00')
  t.ok(
    offset.ok && formatGoTime(offset.time, RFC3339_MICRO) === '2026-11-30T14:22:25.058123Z',
    'an offset is read and stored in UTC',
  )

  t.equal(err(time('2026-11-30T14:22:25Z')), 'ok')
  t.equal(err(time('2026-11-30T14:22:25.058Z')), 'ok', 'Time accepts any fraction on input')
  t.equal(err(time('2026-11-30T14:22:25.058123456789Z')), 'ok')
  const dropped = time('2026-11-30T14:22:25.999Z')
  t.ok(dropped.ok && formatGoTime(dropped.time, RFC3339) === '2026-11-30T14:22:25Z', 'and is stored without it')
  t.equal(
    err(time('2026-11-30T14:22Z')),
    'parsing time "2026-11-30T14:22Z" as "2006-01-02T15:04:05Z07:00": cannot parse "Z" as ":"',
  )
  t.equal(
    err(time('yesterday')),
    'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"',
  )
  t.end()
})

t.test('Lease times are MicroTimes: a millisecond time is refused as the real apiserver refuses it', async (t) => {
  const leases = `${server.url}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases`
  const post = (body: unknown) =>
    fetch(leases, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const lease = (spec: Record<string, unknown>) => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'x' },
    spec: { holderIdentity: 'x', leaseDurationSeconds: 15, ...spec },
  })

  const refused = await post(lease({ acquireTime: '2026-11-30T14:22:25.058Z', renewTime: '2026-11-30T14:22:25.058Z' }))
  t.equal(refused.status, 400)
  const status = (await refused.json()) as { kind: string; reason: string; code: number; message: string }
  const goError =
    'parsing time "2026-11-30T14:22:25.058Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse ".058Z" as ".000000"'
  t.match(status, { kind: 'Status', reason: 'BadRequest', code: 400 })
  t.equal(status.message, `Lease in version "v1" cannot be handled as a Lease: ${goError}`)
  // The 1.19 apiserver (json-iterator) wraps the same error in field paths and byte context;
  // newer ones (sigs.k8s.io/json) pass it through as above. Both parts are the real words:
  const real = kubeletFixture('lease-milliseconds-rejected.txt')
  t.ok(real.includes('Lease in version "v1" cannot be handled as a Lease: '), 'prefix as the real apiserver wrote it')
  t.ok(real.includes(goError), 'Go error as the real apiserver wrote it')
  t.equal(server.get('coordination.k8s.io/v1', 'Lease', 'x', 'kube-node-lease'), undefined, 'nothing stored')

  const noFraction = await post(lease({ renewTime: '2026-11-30T14:22:25Z' }))
  t.equal(noFraction.status, 400)
  t.match(await noFraction.json(), { message: /cannot parse "Z" as "\.000000"$/ })
  const number = await post(lease({ renewTime: 1764512545 }))
  t.match(await number.json(), {
    code: 400,
    message:
      'Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal number into Go value of type string',
  })

  // The kubelet's own Lease, as a 1.19 cluster served it, goes in and comes back unchanged.
  const kubelet = JSON.parse(kubeletFixture('lease-kubelet.json')) as {
    metadata: Record<string, unknown>
    spec: Record<string, unknown>
  }
  const accepted = await post({
    ...kubelet,
    metadata: { name: kubelet.metadata.name, namespace: kubelet.metadata.namespace },
  })
  t.equal(accepted.status, 201)
  t.match(await accepted.json(), { spec: { renewTime: '2026-11-30T14:22:35.065022Z', holderIdentity: 'np-node-1' } })

  // Every way in is decoded: PUT and the patch types, the result stored in UTC with six digits.
  const url = `${leases}/np-node-1`
  const current = (await (await fetch(url)).json()) as Record<string, unknown>
  const put = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...current, spec: { ...kubelet.spec, renewTime: new Date(0).toISOString() } }),
  })
  t.equal(put.status, 400)
  const merge = await fetch(url, {
    method: 'PATCH',
    headers: { 'content-type': 'application/merge-patch+json' },
    body: JSON.stringify({ spec: { renewTime: '2026-11-30T15:00:00.5Z' } }),
  })
  t.equal(merge.status, 400)
  const jp = await fetch(url, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json-patch+json' },
    body: JSON.stringify([{ op: 'replace', path: '/spec/renewTime', value: '2026-11-30T17:00:00.000001+02:00' }]),
  })
  t.equal(jp.status, 200)
  t.match(await jp.json(), { spec: { renewTime: '2026-11-30T15:00:00.000001Z' } })

  // What client-node sends for a Date in a MicroTime field: the bug of issue 15, caught here.
  const api = server.kubeConfig().makeApiClient(CoordinationV1Api)
  const failed = await api
    .createNamespacedLease({
      namespace: 'default',
      body: { metadata: { name: 'd' }, spec: { holderIdentity: 'd', renewTime: new Date() } },
    })
    .then(
      () => undefined,
      (err: { code?: number; body?: string }) => err,
    )
  t.equal(failed?.code, 400)
  t.match(JSON.parse(failed?.body ?? '{}'), { message: /cannot parse "\.\d{3}Z" as "\.000000"$/ })
})

t.test('Event times: eventTime is a MicroTime, firstTimestamp/lastTimestamp are Times', async (t) => {
  const events = `${server.url}/api/v1/namespaces/np-e2e/events`
  const post = (body: unknown) =>
    fetch(events, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const list = JSON.parse(kubeletFixture('event-failedcreate.json')) as { items: Array<Record<string, unknown>> }
  const real = list.items[0]!
  const fresh = (extra: Record<string, unknown>) => ({
    ...real,
    metadata: { name: `e-${Object.keys(extra).join('-')}`, namespace: 'np-e2e' },
    ...extra,
  })

  const stored = await post(fresh({}))
  t.equal(stored.status, 201, 'the FailedCreate event a 1.19 cluster recorded')
  t.match(await stored.json(), { firstTimestamp: '2026-11-30T14:19:56Z', lastTimestamp: '2026-11-30T14:19:56Z' })
  t.notOk('eventTime' in ((await (await fetch(`${events}/e-`)).json()) as object), 'eventTime: null is no time')

  const millis = await post(
    fresh({ firstTimestamp: '2026-11-30T14:19:56.406Z', lastTimestamp: '2026-11-30T14:19:57.999Z' }),
  )
  t.equal(millis.status, 201, 'a Time accepts a fraction...')
  t.match(
    await millis.json(),
    { firstTimestamp: '2026-11-30T14:19:56Z', lastTimestamp: '2026-11-30T14:19:57Z' },
    '...and stores it without',
  )

  const badTime = await post(fresh({ lastTimestamp: 'Nov 30 2026' }))
  t.equal(badTime.status, 400)
  t.match(await badTime.json(), {
    message:
      'Event in version "v1" cannot be handled as a Event: parsing time "Nov 30 2026" as "2006-01-02T15:04:05Z07:00": cannot parse "Nov 30 2026" as "2006"',
  })

  const eventTime = await post(fresh({ eventTime: '2026-11-30T14:19:56.406Z' }))
  t.equal(eventTime.status, 400)
  t.match(await eventTime.json(), {
    message:
      /cannot be handled as a Event: parsing time "2026-11-30T14:19:56\.406Z" as "2006-01-02T15:04:05\.000000Z07:00": cannot parse "\.406Z" as "\.000000"$/,
  })
  const series = await post(
    fresh({ eventTime: '2026-11-30T14:19:56.406000Z', series: { count: 2, lastObservedTime: '2026-11-30T14:19:56Z' } }),
  )
  t.equal(series.status, 400, 'series.lastObservedTime is a MicroTime too')

  const v1 = await fetch(`${server.url}/apis/events.k8s.io/v1/namespaces/np-e2e/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: 'n' },
      eventTime: '2026-11-30T14:19:56.406Z',
    }),
  })
  t.equal(v1.status, 400)
  t.match(await v1.json(), { message: /^Event in version "v1" cannot be handled as a Event: / })
})
