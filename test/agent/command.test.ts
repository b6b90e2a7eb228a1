import t from 'tap'
import { EventEmitter } from 'node:events'
import { AGENT_USAGE, parseAgentArgs, runAgent, type AgentCommandDeps } from '../../src/agent/command.js'
import { durationValue } from '../../src/util/flags.js'
import type { CriClient } from '../../src/agent/cri.js'
import type { NodeImageSet } from '../../src/api/types.js'

const silent = { debug() {}, info() {}, warn() {}, error() {} }

t.test('--interval and --heartbeat durations (util/flags durationValue)', async (t) => {
  t.equal(durationValue('10s'), 10_000)
  t.equal(durationValue('500ms'), 500)
  t.equal(durationValue('5m'), 300_000)
  t.equal(durationValue('1h'), 3_600_000)
  t.equal(durationValue('1m30s'), 90_000)
  t.equal(durationValue('1.5s'), 1_500)
  for (const bad of ['10', '', 's', '10x', '-1s', '10 s', '5m10', '1e3s']) {
    t.throws(() => durationValue(bad), { name: 'UsageError', message: /invalid duration .*e\.g\. 500ms, 10s, 5m/ }, bad)
  }
})

t.test('flags and defaults', async (t) => {
  const c = parseAgentArgs([], { NODE_NAME: 'worker-1' })
  t.same(c, {
    nodeName: 'worker-1',
    criEndpoint: undefined,
    kubeconfig: undefined,
    intervalMs: 10_000,
    heartbeatMs: 300_000,
    metricsPort: 0,
    logLevel: 'info',
    registriesConf: {
      path: '/etc/containers/registries.conf',
      dir: '/etc/containers/registries.conf.d',
      aliasCache: '/var/cache/containers/short-name-aliases.conf',
    },
    hostRoot: '/',
  })
  const d = parseAgentArgs(
    [
      '--node-name=worker-2',
      '--cri-endpoint',
      '/run/k3s/containerd/containerd.sock',
      '--kubeconfig',
      '/k',
      '--interval',
      '500ms',
      '--heartbeat',
      '1m',
      '--log-level',
      'debug',
      '--metrics-port',
      '9090',
      '--host-root',
      '/host',
    ],
    { NODE_NAME: 'ignored' },
  )
  t.same(d, {
    nodeName: 'worker-2',
    criEndpoint: 'unix:///run/k3s/containerd/containerd.sock',
    kubeconfig: '/k',
    intervalMs: 500,
    heartbeatMs: 60_000,
    metricsPort: 9090,
    logLevel: 'debug',
    registriesConf: {
      path: '/etc/containers/registries.conf',
      dir: '/etc/containers/registries.conf.d',
      aliasCache: '/var/cache/containers/short-name-aliases.conf',
    },
    hostRoot: '/host',
  })
  const e = parseAgentArgs(
    [
      '--registries-conf',
      '/host/etc/containers/registries.conf',
      '--registries-conf-dir',
      '/host/etc/containers/registries.conf.d',
    ],
    { NODE_NAME: 'n' },
  )
  t.same(e === 'help' ? undefined : e.registriesConf, {
    path: '/host/etc/containers/registries.conf',
    dir: '/host/etc/containers/registries.conf.d',
    aliasCache: '/var/cache/containers/short-name-aliases.conf',
  })
  t.equal(parseAgentArgs(['-h'], {}), 'help')
})

function capture() {
  let out = ''
  let err = ''
  return {
    deps: { stdout: (s: string) => void (out += s), stderr: (s: string) => void (err += s), logger: () => silent },
    out: () => out,
    err: () => err,
  }
}

t.test('--service-account-dir', async (t) => {
  const c = parseAgentArgs(['--service-account-dir', '/run/sa'], { NODE_NAME: 'worker-1' })
  t.equal(c === 'help' ? undefined : c.serviceAccountDir, '/run/sa')
})

t.test('bad flags exit 2 with a message that says what to fix', async (t) => {
  const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--bogus'], { NODE_NAME: 'n' }, /Unknown option '--bogus'/],
    [['stray'], { NODE_NAME: 'n' }, /positional/i],
    [[], {}, /--node-name is required \(or set NODE_NAME/],
    [['--node-name', 'Bad_Name'], {}, /node name "Bad_Name" is not a valid Kubernetes node name/],
    [['--interval', '10'], { NODE_NAME: 'n' }, /invalid duration "10"/],
    [['--interval', '10ms'], { NODE_NAME: 'n' }, /--interval 10ms is too short/],
    [
      ['--interval', '1m', '--heartbeat', '30s'],
      { NODE_NAME: 'n' },
      /--heartbeat .* must not be shorter than --interval/,
    ],
    [['--log-level', 'loud'], { NODE_NAME: 'n' }, /--log-level "loud" is not one of trace, debug/],
    [['--cri-endpoint', 'tcp://1.2.3.4:5'], { NODE_NAME: 'n' }, /--cri-endpoint: unsupported CRI endpoint/],
    [['--metrics-port', '70000'], { NODE_NAME: 'n' }, /--metrics-port "70000" is not a whole number from 0 to 65535/],
    [['--metrics-port', 'http'], { NODE_NAME: 'n' }, /--metrics-port "http" is not a whole number from 0 to 65535/],
  ]
  for (const [argv, env, message] of cases) {
    const c = capture()
    t.equal(await runAgent(argv, env, c.deps), 2, argv.join(' ') || '(no flags)')
    t.match(c.err(), message)
    t.match(c.err(), /^neverpull-guard agent: .*\nRun "neverpull-guard agent --help" for usage\.\n$/s)
  }
})

t.test('--help prints usage and exits 0', async (t) => {
  const c = capture()
  t.equal(await runAgent(['--help'], {}, c.deps), 0)
  t.equal(c.out(), AGENT_USAGE)
  t.match(c.out(), /--cri-endpoint/)
})

t.test('no runtime socket: exit 1 naming what was tried', async (t) => {
  const c = capture()
  const code = await runAgent(
    [],
    { NODE_NAME: 'n' },
    {
      ...c.deps,
      probe: async () => {
        throw new Error('no container runtime socket found (tried unix:///run/containerd/containerd.sock)')
      },
    },
  )
  t.equal(code, 1)
  t.match(c.err(), /no container runtime socket found/)
})

t.test('runs until SIGTERM, then exits 0 after the iteration', async (t) => {
  const signals = new EventEmitter()
  let closed = false
  const applied: NodeImageSet[] = []
  let firstApply!: () => void
  const applying = new Promise<void>((r) => (firstApply = r))
  let connectedTo = ''
  const cri: CriClient = {
    endpoint: 'unix:///run/containerd/containerd.sock',
    listImages: async () => [
      { id: 'sha256:aa', repoTags: ['docker.io/library/a:1'], repoDigests: [], size: 1, pinned: false },
    ],
    imageStatus: async () => ({
      id: 'sha256:aa',
      repoTags: ['docker.io/library/a:1'],
      repoDigests: [],
      size: 1,
      pinned: false,
    }),
    imageFsInfo: async () => undefined,
    version: async () => ({ name: 'containerd', version: '1.7.0', endpoint: 'unix:///run/containerd/containerd.sock' }),
    close: () => void (closed = true),
  }
  const deps: Partial<AgentCommandDeps> = {
    ...capture().deps,
    signals,
    probe: async () => 'unix:///run/containerd/containerd.sock',
    connect: (endpoint) => {
      connectedTo = endpoint
      return cri
    },
    publisher: async (config) => {
      t.equal(config.nodeName, 'worker-1')
      return {
        async apply(set) {
          applied.push(set)
          firstApply()
        },
        async applyStatus() {},
      }
    },
  }
  const exit = runAgent(['--interval', '1h', '--heartbeat', '2h'], { NODE_NAME: 'worker-1' }, deps)
  await applying
  t.equal(connectedTo, 'unix:///run/containerd/containerd.sock', 'probed endpoint used')
  t.equal(signals.listenerCount('SIGTERM'), 1)
  signals.emit('SIGTERM')
  t.equal(await exit, 0)
  t.equal(closed, true, 'CRI connection closed')
  t.equal(applied.length, 1)
  t.equal(signals.listenerCount('SIGTERM'), 0, 'signal handlers removed')
  t.equal(signals.listenerCount('SIGINT'), 0)
})

t.test('an unreadable kubeconfig is named', async (t) => {
  const c = capture()
  const code = await runAgent(
    ['--kubeconfig', '/nonexistent/kubeconfig', '--cri-endpoint', '/run/x.sock'],
    { NODE_NAME: 'n' },
    {
      ...c.deps,
      connect: (endpoint) => ({
        endpoint,
        listImages: async () => [],
        imageStatus: async () => undefined,
        imageFsInfo: async () => undefined,
        version: async () => ({ name: 'x', version: '1', endpoint }),
        close() {},
      }),
    },
  )
  t.equal(code, 1)
  t.match(c.err(), /cannot load kubeconfig "\/nonexistent\/kubeconfig": ENOENT/)
})
