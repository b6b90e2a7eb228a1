import t, { type Test } from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { KubeConfig } from '@kubernetes/client-node'
import { parse as parseYaml } from 'yaml'
import { nodeImageSet } from '../../src/agent/agent.js'
import { FIELD_MANAGER, PublishError, createKubePublisher } from '../../src/agent/publish.js'
import type { RuntimeImage } from '../../src/api/types.js'

// A real HTTP server standing in for the apiserver: the client library runs unmodified and
// we look at exactly what goes over the wire.

interface Seen {
  method: string
  path: string
  query: URLSearchParams
  headers: IncomingMessage['headers']
  body: string
}

type Handler = (req: Seen, res: ServerResponse) => void

const NODE_UID = '7d3f9a52-1c55-4c1e-9d0b-2f3c8e7a4b10'

const IMAGES: RuntimeImage[] = [
  {
    id: 'sha256:2b1c7d4c6a0d9f0f4e8f6c8b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d',
    repoTags: ['docker.io/library/nginx:1.27'],
    repoDigests: ['docker.io/library/nginx@sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0'],
    size: 72_345_678,
    pinned: false,
  },
]

async function apiserver(t: Test, handler: Handler) {
  const seen: Seen[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x')
      const s: Seen = {
        method: req.method ?? '',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      }
      seen.push(s)
      handler(s, res)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((r) => server.close(() => r()))
  })
  const { port } = server.address() as AddressInfo
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{ name: 'test', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'agent', token: 'agent-token' }],
    contexts: [{ name: 'test', cluster: 'test', user: 'agent' }],
    currentContext: 'test',
  })
  return { kc, seen }
}

function json(res: ServerResponse, code: number, body: unknown) {
  res.writeHead(code, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

function normalApiserver(req: Seen, res: ServerResponse) {
  if (req.method === 'GET' && req.path === '/api/v1/nodes/node-a') {
    return json(res, 200, { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', uid: NODE_UID } })
  }
  if (req.method === 'PATCH' && req.path.startsWith('/apis/neverpull.dev/v1alpha1/nodeimagesets/')) {
    const obj = parseYaml(req.body) as Record<string, unknown>
    return json(res, 200, { ...obj, metadata: { ...(obj.metadata as object), uid: 'set-uid', resourceVersion: '42' } })
  }
  json(res, 404, {
    kind: 'Status',
    apiVersion: 'v1',
    status: 'Failure',
    reason: 'NotFound',
    code: 404,
    message: 'not found',
  })
}

t.test('apply: server-side apply of metadata (Node owner) and spec', async (t) => {
  const { kc, seen } = await apiserver(t, normalApiserver)
  const publisher = createKubePublisher(kc, { nodeName: 'node-a' })
  const runtime = { name: 'containerd', version: '1.7.22', endpoint: 'unix:///run/containerd/containerd.sock' }
  const set = nodeImageSet('node-a', runtime, IMAGES)
  set.status = { observedTime: '2025-03-01T12:00:00.000Z' }
  await publisher.apply(set)

  t.equal(seen.length, 2)
  const [get, patch] = seen
  t.equal(get?.method, 'GET')
  t.equal(get?.path, '/api/v1/nodes/node-a', 'reads the Node for its uid')
  t.equal(get?.headers.authorization, 'Bearer agent-token')

  t.equal(patch?.method, 'PATCH')
  t.equal(patch?.path, '/apis/neverpull.dev/v1alpha1/nodeimagesets/node-a')
  t.equal(patch?.headers['content-type'], 'application/apply-patch+yaml')
  t.equal(patch?.query.get('fieldManager'), FIELD_MANAGER)
  t.equal(patch?.query.get('fieldManager'), 'neverpull-guard-agent')
  t.equal(patch?.query.get('force'), 'true')
  t.equal(patch?.headers.authorization, 'Bearer agent-token')
  const body: unknown = JSON.parse(patch?.body ?? '')
  t.same(parseYaml(patch?.body ?? ''), body, 'the JSON body is the YAML the content type announces')
  t.same(
    body,
    {
      apiVersion: 'neverpull.dev/v1alpha1',
      kind: 'NodeImageSet',
      metadata: {
        name: 'node-a',
        ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: 'node-a', uid: NODE_UID }],
      },
      spec: { nodeName: 'node-a', runtime, images: IMAGES },
    },
    'exactly the owned fields: no status, no resourceVersion',
  )

  await publisher.apply(set)
  t.equal(seen.length, 3, 'the Node uid is read once')
  t.equal(seen[2]?.method, 'PATCH')
})

t.test('applyStatus: server-side apply on the status subresource', async (t) => {
  const { kc, seen } = await apiserver(t, normalApiserver)
  const publisher = createKubePublisher(kc, { nodeName: 'node-a' })
  const status = {
    observedTime: '2025-03-01T12:00:00.000Z',
    conditions: [
      {
        type: 'RuntimeReachable',
        status: 'True' as const,
        reason: 'ImagesListed',
        message: 'listed 1 images from containerd 1.7.22 at unix:///run/containerd/containerd.sock',
        lastTransitionTime: '2025-03-01T11:00:00.000Z',
      },
    ],
  }
  await publisher.applyStatus('node-a', status)
  t.equal(seen.length, 1, 'no Node read for a status apply')
  const patch = seen[0]
  t.equal(patch?.method, 'PATCH')
  t.equal(patch?.path, '/apis/neverpull.dev/v1alpha1/nodeimagesets/node-a/status')
  t.equal(patch?.headers['content-type'], 'application/apply-patch+yaml')
  t.equal(patch?.query.get('fieldManager'), 'neverpull-guard-agent')
  t.equal(patch?.query.get('force'), 'true')
  t.same(JSON.parse(patch?.body ?? ''), {
    apiVersion: 'neverpull.dev/v1alpha1',
    kind: 'NodeImageSet',
    metadata: { name: 'node-a' },
    status,
  })

  await publisher.applyStatus('node-a', { conditions: status.conditions })
  t.equal(
    seen[1]?.query.get('fieldManager'),
    'neverpull-guard-agent-conditions',
    'a status without observedTime uses its own manager, so the apply cannot delete the last observation',
  )
})

t.test('errors carry the apiserver message and status code', async (t) => {
  const { kc } = await apiserver(t, (req, res) => {
    if (req.method === 'GET') return normalApiserver(req, res)
    json(res, 422, {
      kind: 'Status',
      apiVersion: 'v1',
      status: 'Failure',
      reason: 'Invalid',
      code: 422,
      message:
        'NodeImageSet.neverpull.dev "node-a" is invalid: spec.images: Too many: 20001: must have at most 20000 items',
    })
  })
  const publisher = createKubePublisher(kc, { nodeName: 'node-a' })
  const err = await publisher.apply(nodeImageSet('node-a', undefined, IMAGES)).catch((e: unknown) => e)
  t.type(err, PublishError)
  t.equal((err as PublishError).statusCode, 422)
  t.match(
    (err as PublishError).message,
    /^applying NodeImageSet "node-a": NodeImageSet\.neverpull\.dev "node-a" is invalid: .*Too many.*\(HTTP 422\)$/,
  )

  const serr = await publisher.applyStatus('node-a', {}).catch((e: unknown) => e)
  t.equal((serr as PublishError).statusCode, 422)
  t.match((serr as PublishError).message, /status/)
})

t.test('a missing Node is named, with the fix', async (t) => {
  const { kc, seen } = await apiserver(t, normalApiserver)
  const publisher = createKubePublisher(kc, { nodeName: 'node-typo' })
  const err = await publisher.apply(nodeImageSet('node-typo', undefined, IMAGES)).catch((e: unknown) => e)
  t.type(err, PublishError)
  t.equal((err as PublishError).statusCode, 404)
  t.match((err as PublishError).message, /node "node-typo" not found: set --node-name or NODE_NAME/)
  t.equal(seen.filter((s) => s.method === 'PATCH').length, 0, 'nothing applied without an owner')
})

t.test('401 and unreachable apiservers give clear errors', async (t) => {
  const { kc } = await apiserver(t, (_req, res) =>
    json(res, 401, { kind: 'Status', code: 401, message: 'Unauthorized' }),
  )
  const err = await createKubePublisher(kc, { nodeName: 'node-a' })
    .apply(nodeImageSet('node-a', undefined, []))
    .catch((e: unknown) => e)
  t.equal((err as PublishError).statusCode, 401)
  t.match((err as PublishError).message, /reading node "node-a": Unauthorized/)

  const down = new KubeConfig()
  down.loadFromOptions({
    clusters: [{ name: 'c', server: 'http://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'c', cluster: 'c', user: 'u' }],
    currentContext: 'c',
  })
  const derr = await createKubePublisher(down, { nodeName: 'node-a' })
    .applyStatus('node-a', {})
    .catch((e: unknown) => e)
  t.type(derr, PublishError)
  t.equal((derr as PublishError).statusCode, undefined)
  t.match((derr as PublishError).message, /ECONNREFUSED/)
})

t.test('every request has a deadline', async (t) => {
  const { kc } = await apiserver(t, () => {
    // never answers
  })
  const started = Date.now()
  const err = await createKubePublisher(kc, { nodeName: 'node-a', timeoutMs: 200 })
    .applyStatus('node-a', {})
    .catch((e: unknown) => e)
  t.type(err, PublishError)
  t.ok(Date.now() - started < 5_000, 'gave up on its own')
  t.match((err as PublishError).message, /abort|timeout/i)
})
