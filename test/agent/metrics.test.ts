import t from 'tap'
import { EventEmitter } from 'node:events'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { createAgent, type Clock } from '../../src/agent/agent.js'
import { runAgent, type AgentCommandDeps } from '../../src/agent/command.js'
import type { CriClient } from '../../src/agent/cri.js'
import { createAgentMetrics, serveAgentMetrics } from '../../src/agent/metrics.js'
import type { Publisher } from '../../src/agent/publish.js'
import { sample } from '../helpers/metrics.js'

// The agent's /metrics as Prometheus scrapes it: every series the rules and the dashboard in
// manifests/components/monitoring read from the agent, by name and labels.

const silent = { debug() {}, info() {}, warn() {}, error() {} }
const image = { id: 'sha256:aa', repoTags: ['docker.io/library/a:1'], repoDigests: [], size: 1, pinned: false }
const clock = (start: number): Clock & { at: number } => {
  const c = { at: start, now: () => c.at, sleep: async () => undefined }
  return c
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`)
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`)
  return res.text()
}

t.test('runtime, images and publishes as the agent saw them', async (t) => {
  const metrics = createAgentMetrics()
  const server = await serveAgentMetrics(metrics.registry, 0, '127.0.0.1')
  t.teardown(() => server.close())
  let runtimeUp = true
  let apiUp = true
  const listed = [image, { ...image, id: 'sha256:bb', repoTags: ['docker.io/library/b:1'] }]
  const cri: Pick<CriClient, 'listImages' | 'imageStatus' | 'version'> = {
    listImages: async () => {
      if (!runtimeUp) throw new Error('connect ENOENT /run/containerd/containerd.sock')
      return listed
    },
    imageStatus: async (name) => listed.find((i) => i.id === name || i.repoTags.includes(name)),
    version: async () => ({ name: 'containerd', version: '1.7.0', endpoint: 'unix:///run/containerd/containerd.sock' }),
  }
  const publisher: Publisher = {
    apply: async () => {
      if (!apiUp) throw new Error('connect ECONNREFUSED')
    },
    applyStatus: async () => {
      if (!apiUp) throw new Error('connect ECONNREFUSED')
    },
  }
  const c = clock(Date.parse('2026-11-30T10:00:00Z'))
  const agent = createAgent({ nodeName: 'node-a', cri, publisher, clock: c, observer: metrics })

  const before = await scrape(server.url)
  t.equal(
    sample(before, 'neverpull_agent_publishes_total', { object: 'spec', result: 'failure' }),
    0,
    'failure series exist before any failure',
  )
  t.equal(
    sample(before, 'neverpull_agent_runtime_reachable'),
    undefined,
    'reachability unknown before the first listing',
  )
  t.equal(sample(before, 'neverpull_agent_images'), undefined, 'no count before the first listing')
  t.equal(
    sample(before, 'neverpull_agent_last_publish_timestamp_seconds'),
    undefined,
    'no time before the first publish',
  )

  await agent.tick()
  let text = await scrape(server.url)
  t.equal(sample(text, 'neverpull_agent_runtime_reachable'), 1)
  t.equal(sample(text, 'neverpull_agent_images'), 2)
  t.equal(sample(text, 'neverpull_agent_publishes_total', { object: 'spec', result: 'success' }), 1)
  t.equal(sample(text, 'neverpull_agent_publishes_total', { object: 'status', result: 'success' }), 1)
  t.equal(sample(text, 'neverpull_agent_last_publish_timestamp_seconds'), c.at / 1000)
  t.equal(sample(text, 'neverpull_agent_runtime_errors_total'), 0)

  runtimeUp = false
  c.at += 10_000
  await agent.tick()
  text = await scrape(server.url)
  t.equal(sample(text, 'neverpull_agent_runtime_reachable'), 0, 'runtime down')
  t.equal(sample(text, 'neverpull_agent_runtime_errors_total'), 1)
  t.equal(sample(text, 'neverpull_agent_images'), 2, 'the last listed count is kept')
  t.equal(
    sample(text, 'neverpull_agent_last_publish_timestamp_seconds'),
    c.at / 1000,
    'the condition change was published',
  )

  runtimeUp = true
  apiUp = false
  c.at += 10_000
  await agent.tick()
  text = await scrape(server.url)
  t.equal(sample(text, 'neverpull_agent_runtime_reachable'), 1)
  t.equal(
    sample(text, 'neverpull_agent_publishes_total', { object: 'status', result: 'failure' }),
    1,
    'the status flip could not be applied',
  )
  t.equal(
    sample(text, 'neverpull_agent_last_publish_timestamp_seconds'),
    (c.at - 10_000) / 1000,
    'last success unchanged',
  )

  const res = await fetch(`${server.url}/nope`)
  t.equal(res.status, 404)
  t.match(await res.text(), /GET \/metrics/)
  t.equal((await fetch(`${server.url}/metrics`, { method: 'POST' })).status, 405)
  t.equal((await fetch(`${server.url}/healthz`)).status, 200)
})

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

t.test('neverpull-guard agent --metrics-port serves them until it stops', async (t) => {
  const signals = new EventEmitter()
  let url = ''
  let published!: () => void
  const publishing = new Promise<void>((r) => (published = r))
  const deps: Partial<AgentCommandDeps> = {
    stdout: () => undefined,
    stderr: () => undefined,
    logger: () => silent,
    signals,
    probe: async () => 'unix:///run/containerd/containerd.sock',
    connect: (endpoint) => ({
      endpoint,
      listImages: async () => [image],
      version: async () => ({ name: 'containerd', version: '1.7.0', endpoint }),
      imageStatus: async () => image,
      close() {},
    }),
    publisher: async () => ({
      apply: async () => undefined,
      applyStatus: async () => published(),
    }),
    onMetrics: (u) => void (url = u),
  }
  const port = await freePort()
  const exit = runAgent(
    ['--interval', '1h', '--heartbeat', '2h', '--metrics-port', String(port)],
    { NODE_NAME: 'worker-1' },
    deps,
  )
  await publishing
  t.match(url, new RegExp(`:${port}$`))
  const text = await scrape(`http://127.0.0.1:${port}`)
  t.equal(sample(text, 'neverpull_agent_images'), 1)
  t.equal(sample(text, 'neverpull_agent_runtime_reachable'), 1)
  signals.emit('SIGTERM')
  t.equal(await exit, 0)
  await t.rejects(fetch(`http://127.0.0.1:${port}/metrics`), 'the listener is closed with the agent')
})

t.test('a port in use is a clear start-up error', async (t) => {
  const blocker = createServer()
  await new Promise<void>((r) => blocker.listen(0, '0.0.0.0', r))
  t.teardown(() => new Promise<void>((r) => blocker.close(() => r())))
  const port = (blocker.address() as AddressInfo).port
  let err = ''
  let closed = false
  const code = await runAgent(
    ['--metrics-port', String(port)],
    { NODE_NAME: 'n' },
    {
      stdout: () => undefined,
      stderr: (s) => void (err += s),
      logger: () => silent,
      probe: async () => 'unix:///run/containerd/containerd.sock',
      connect: (endpoint) => ({
        endpoint,
        listImages: async () => [],
        version: async () => ({ name: 'x', version: '1', endpoint }),
        imageStatus: async () => undefined,
        close: () => void (closed = true),
      }),
      publisher: async () => ({ apply: async () => undefined, applyStatus: async () => undefined }),
    },
  )
  t.equal(code, 1)
  t.match(err, new RegExp(`cannot serve metrics on port ${port}: .*EADDRINUSE`))
  t.equal(closed, true, 'the CRI connection is closed')
})
