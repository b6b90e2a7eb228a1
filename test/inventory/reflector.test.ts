import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { kubeConfigHttp } from '../../src/kube/http.js'
import { httpListerWatcher } from '../../src/kube/lister-watcher.js'
import { Reflector, type ReflectorOptions, type ReflectorSource } from '../../src/inventory/reflector.js'
import { startFakeApiServer, type FakeApiServer, type KubeObject } from '../helpers/fake-apiserver.js'

const SETS = '/apis/neverpull.dev/v1alpha1/nodeimagesets'

const imageSet = (name: string, tag = 'docker.io/library/pause:3.9'): KubeObject => ({
  apiVersion: 'neverpull.dev/v1alpha1',
  kind: 'NodeImageSet',
  metadata: { name },
  spec: { nodeName: name, images: [{ id: 'sha256:1', repoTags: [tag] }] },
})

async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`)
    await sleep(5)
  }
}

interface Harness {
  server: FakeApiServer
  reflector: Reflector
  /** `upsert name rv`, `remove name`, `malformed reason`, in order. */
  calls: string[]
  held: Set<string>
  warnings: Array<{ obj: Record<string, unknown>; msg: string }>
  listed: number
}

async function harness(
  t: { teardown(fn: () => unknown): void },
  seed: (server: FakeApiServer) => void,
  extra: Partial<ReflectorOptions> & { throwOn?: string } = {},
): Promise<Harness> {
  const server = await startFakeApiServer()
  seed(server)
  const h: Harness = {
    server,
    reflector: undefined as unknown as Reflector,
    calls: [],
    held: new Set(),
    warnings: [],
    listed: 0,
  }
  const source: ReflectorSource = {
    kind: 'NodeImageSet',
    upsert: (obj, name) => {
      if (name === extra.throwOn) throw new Error('sink exploded')
      h.calls.push(`upsert ${name} ${String((obj.metadata as { resourceVersion?: string }).resourceVersion)}`)
      h.held.add(name)
    },
    remove: (name) => {
      h.calls.push(`remove ${name}`)
      h.held.delete(name)
    },
    malformed: (_obj, reason) => h.calls.push(`malformed ${reason}`),
  }
  const noop = (): void => undefined
  h.reflector = new Reflector(source, {
    listerWatcher: httpListerWatcher(kubeConfigHttp(server.kubeConfig()), SETS),
    log: {
      debug: noop,
      info: noop,
      warn: (obj, msg) => h.warnings.push({ obj: obj as Record<string, unknown>, msg }),
      error: (obj, msg) => h.warnings.push({ obj: obj as Record<string, unknown>, msg }),
    },
    retryInitialMs: 10,
    retryMaxMs: 50,
    listTimeoutMs: 5000,
    pageSize: 3,
    watchTimeoutSeconds: 60,
    onListed: () => h.listed++,
    ...extra,
  })
  h.reflector.start()
  t.teardown(async () => {
    await h.reflector.close()
    await server.close()
  })
  return h
}

const lists = (server: FakeApiServer) => server.requests.filter((r) => r.path === SETS && r.query.watch === undefined)

t.test('what is kept per object is its name and resourceVersion; it follows deletions', async (t) => {
  const h = await harness(t, (server) => {
    for (let i = 0; i < 8; i++) server.put(imageSet(`n${i}`))
  })
  await waitFor('listed', () => h.listed === 1)
  t.equal(h.reflector.size, 8)
  await waitFor('watching', () => h.server.openWatches === 1)
  h.server.remove('neverpull.dev/v1alpha1', 'NodeImageSet', 'n3')
  h.server.put(imageSet('n9'))
  await waitFor('n3 removed, n9 added', () => !h.held.has('n3') && h.held.has('n9'))
  t.equal(h.reflector.size, 8)
  t.equal(h.listed, 1, 'onListed fires once')
})

t.test('a relist upserts only changed objects, then removes exactly what is gone', async (t) => {
  const h = await harness(t, (server) => {
    for (let i = 0; i < 7; i++) server.put(imageSet(`n${i}`))
  })
  await waitFor('watching', () => h.server.openWatches === 1)
  h.calls.length = 0
  h.server.breakWatches()
  h.server.remove('neverpull.dev/v1alpha1', 'NodeImageSet', 'n1')
  h.server.remove('neverpull.dev/v1alpha1', 'NodeImageSet', 'n5')
  const changed = h.server.put(imageSet('n2', 'docker.io/library/pause:3.10'))
  const added = h.server.put(imageSet('n7'))
  h.server.expireHistory()
  await waitFor('relisted and watching', () => lists(h.server).length >= 4 && h.server.openWatches === 1)
  t.same(h.calls, [
    `upsert n2 ${changed.metadata?.resourceVersion}`,
    `upsert n7 ${added.metadata?.resourceVersion}`,
    'remove n1',
    'remove n5',
  ])
  t.same([...h.held].sort(), ['n0', 'n2', 'n3', 'n4', 'n6', 'n7'])
  t.equal(h.reflector.size, 6)
})

t.test('an expired continue token during a relist: only the restarted list decides removals', async (t) => {
  const h = await harness(t, (server) => {
    for (let i = 0; i < 7; i++) server.put(imageSet(`n${i}`))
  })
  await waitFor('watching', () => h.server.openWatches === 1)
  h.calls.length = 0
  h.server.breakWatches()
  h.server.remove('neverpull.dev/v1alpha1', 'NodeImageSet', 'n6')
  h.server.expireHistory()
  // n0 is on the relist's first page; it is deleted just before the second page is asked for,
  // whose token has expired by then. The restarted list no longer has n0: it must go.
  let fired = false
  h.server.failNext(1, 410, (r) => {
    if (r.path !== SETS || r.query.continue === undefined || fired) return false
    fired = true
    h.server.remove('neverpull.dev/v1alpha1', 'NodeImageSet', 'n0')
    return true
  })
  await waitFor('restarted and watching', () => fired && h.server.openWatches === 1 && !h.held.has('n0'))
  t.same(h.calls.filter((c) => c.startsWith('remove')).sort(), ['remove n0', 'remove n6'])
  t.same([...h.held].sort(), ['n1', 'n2', 'n3', 'n4', 'n5'])
  t.equal(h.reflector.size, 5)
  t.same(
    h.warnings.filter((w) => !/premature close/.test(String(w.obj.err))),
    [],
    'nothing logged but the cut: an expired token just restarts the list',
  )
})

t.test('a list that fails part-way keeps what it handed over known, so the retry can remove it', async (t) => {
  let fired = false
  const h = await harness(t, (server) => {
    for (let i = 0; i < 5; i++) server.put(imageSet(`n${i}`))
    // Page two fails; meanwhile n0, handed over with page one, is deleted.
    server.failNext(1, 503, (r) => {
      if (r.path !== SETS || r.query.continue === undefined || fired) return false
      fired = true
      server.remove('neverpull.dev/v1alpha1', 'NodeImageSet', 'n0')
      return true
    })
  })
  await waitFor('listed', () => h.listed === 1)
  t.equal(lists(h.server).length, 4, 'page one, a failed page two, then the whole (now two-page) list again')
  t.same(
    h.calls,
    ['upsert n0 2', 'upsert n1 3', 'upsert n2 4', 'upsert n3 5', 'upsert n4 6', 'remove n0'],
    'the retry skips what it already handed over',
  )
  t.same([...h.held].sort(), ['n1', 'n2', 'n3', 'n4'])
})

t.test('a sink that throws costs that object only; malformed list items are reported', async (t) => {
  const h = await harness(
    t,
    (server) => {
      for (let i = 0; i < 4; i++) server.put(imageSet(`n${i}`))
    },
    { throwOn: 'n1' },
  )
  await waitFor('listed', () => h.listed === 1)
  t.same([...h.held].sort(), ['n0', 'n2', 'n3'])
  t.match(h.warnings, [
    { obj: { kind: 'NodeImageSet', name: 'n1', err: 'sink exploded' }, msg: 'inventory upsert failed' },
  ])
  await waitFor('watching', () => h.server.openWatches === 1)
  h.server.sendRaw(
    JSON.stringify({ type: 'ADDED', object: { kind: 'NodeImageSet', metadata: { resourceVersion: '999' } } }),
  )
  h.server.put(imageSet('n4'))
  await waitFor('n4 after the nameless one', () => h.held.has('n4'))
  t.ok(h.calls.includes('malformed object without metadata.name'))
})

t.test('an event far larger than a socket read arrives whole', async (t) => {
  const h = await harness(t, (server) => server.put(imageSet('n0')))
  await waitFor('watching', () => h.server.openWatches === 1)
  const big = imageSet('big')
  ;(big.spec as { images: unknown[] }).images = Array.from({ length: 3000 }, (_, i) => ({
    id: `sha256:${String(i).padStart(64, '0')}`,
    repoTags: [`registry.example.com/app-${i}:v1`],
  }))
  h.server.put(big)
  h.server.put(imageSet('after'))
  await waitFor('both arrive', () => h.held.has('big') && h.held.has('after'))
  t.same(h.warnings, [])
})

t.test('retries wait as the injected clock and randomness say: the shared backoff, with jitter', async (t) => {
  const waits: number[] = []
  // Backoffs pass at once; the list and watch deadlines (5 s and 90 s here), which go through
  // the same clock, wait until they are cancelled.
  const clock = {
    now: () => Date.now(),
    sleep: (ms: number, signal: AbortSignal) => {
      if (ms < 5000) return Promise.resolve(void waits.push(ms))
      return new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
    },
  }
  const h = await harness(
    t,
    (server) => {
      server.put(imageSet('n0'))
      server.failNext(4, 503, (r) => r.path === SETS && r.query.watch === undefined)
    },
    { clock, random: () => 0, retryInitialMs: 100, retryMaxMs: 500 },
  )
  await waitFor('listed', () => h.listed === 1)
  t.strictSame(waits, [50, 100, 200, 250], 'half of 100, 200, 400 and the 500 cap (random 0: the lower edge)')
  t.same(h.calls, ['upsert n0 2'])
})
