import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { kubeConfigHttp } from '../../src/kube/http.js'
import { decide } from '../../src/decision/decide.js'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'
import type { PodTemplateFacts } from '../../src/workload/pod-template.js'
import { bitsHas } from '../../src/util/node-set.js'
import {
  startInventoryWatch,
  type InventoryKind,
  type InventoryWatch,
  type InventoryWatchOptions,
} from '../../src/inventory/watch.js'
import type { InventorySink, Mode, NodeFacts, NodeImages, RuntimeClassFacts } from '../../src/api/types.js'
import type { PullableRegistries } from '../../src/api/registries.js'
import { startFakeApiServer, type FakeApiServer, type KubeObject } from '../helpers/fake-apiserver.js'

// ---- fixtures ---------------------------------------------------------------------------

const node = (
  name: string,
  labels: Record<string, string> = {},
  extra: { unschedulable?: boolean; images?: string[] } = {},
): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
  spec: {
    ...(extra.unschedulable === true ? { unschedulable: true } : {}),
    taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }],
  },
  status: {
    conditions: [{ type: 'Ready', status: 'True' }],
    images: [{ names: extra.images ?? ['docker.io/library/pause:3.9'], sizeBytes: 1000 }],
  },
})

const imageSet = (name: string, tags: string[], observedTime = '2025-06-01T12:00:00Z'): KubeObject => ({
  apiVersion: 'neverpull.dev/v1alpha1',
  kind: 'NodeImageSet',
  metadata: { name },
  spec: {
    nodeName: name,
    runtime: { name: 'containerd', version: '1.7.0', endpoint: 'unix:///run/containerd/containerd.sock' },
    images: tags.map((tag, i) => ({
      id: `sha256:${String(i).padStart(64, '0')}`,
      repoTags: [tag],
      repoDigests: [],
      size: 10,
      pinned: false,
    })),
  },
  status: { observedTime },
})

const namespace = (name: string, mode?: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, ...(mode === undefined ? {} : { labels: { 'neverpull.dev/mode': mode } }) },
})

// ---- recording sink, logger, metrics ----------------------------------------------------

class RecordingSink implements InventorySink {
  readonly nodes = new Map<string, NodeFacts>()
  readonly images = new Map<string, NodeImages>()
  readonly modes = new Map<string, Mode>()
  readonly steering = new Map<string, boolean>()
  readonly calls: string[] = []
  /** Smallest node / image-set count seen after the first sync: a relist must never empty us. */
  minNodes = Infinity
  minImages = Infinity
  tracking = false

  upsertNode(n: NodeFacts): void {
    this.calls.push(`upsertNode ${n.name}`)
    this.nodes.set(n.name, n)
  }
  removeNode(name: string): void {
    this.calls.push(`removeNode ${name}`)
    this.nodes.delete(name)
    this.track()
  }
  upsertImages(i: NodeImages): void {
    this.calls.push(`upsertImages ${i.nodeName}`)
    this.images.set(i.nodeName, i)
  }
  removeImages(nodeName: string): void {
    this.calls.push(`removeImages ${nodeName}`)
    this.images.delete(nodeName)
    this.track()
  }
  setNamespaceMode(ns: string, mode: Mode | undefined): void {
    this.calls.push(`setNamespaceMode ${ns} ${mode ?? '-'}`)
    if (mode === undefined) this.modes.delete(ns)
    else this.modes.set(ns, mode)
  }
  /** Not in `calls`: the call-order assertions below predate the annotation. */
  readonly pullable = new Map<string, PullableRegistries>()
  setNamespacePullableRegistries(ns: string, registries: PullableRegistries | undefined): void {
    if (registries === undefined) this.pullable.delete(ns)
    else this.pullable.set(ns, registries)
  }
  setNamespaceSteer(ns: string, steer: boolean | undefined): void {
    if (steer === undefined) this.steering.delete(ns)
    else this.steering.set(ns, steer)
  }
  /** Not in `calls` either: RuntimeClasses came after the call-order assertions. */
  readonly runtimeClasses = new Map<string, RuntimeClassFacts>()
  runtimeClassesComplete = false
  upsertRuntimeClass(rc: RuntimeClassFacts): void {
    this.runtimeClasses.set(rc.name, rc)
  }
  removeRuntimeClass(name: string): void {
    this.runtimeClasses.delete(name)
  }
  setRuntimeClassesComplete(complete: boolean): void {
    this.runtimeClassesComplete = complete
  }
  /** Nor these: which namespaces exist, and whether that is all of them. */
  readonly namespacesSeen = new Set<string>()
  namespacesComplete = false
  setNamespaceSeen(ns: string, seen: boolean): void {
    if (seen) this.namespacesSeen.add(ns)
    else this.namespacesSeen.delete(ns)
  }
  setNamespacesComplete(complete: boolean): void {
    this.namespacesComplete = complete
  }
  private track(): void {
    if (!this.tracking) return
    this.minNodes = Math.min(this.minNodes, this.nodes.size)
    this.minImages = Math.min(this.minImages, this.images.size)
  }
}

interface LogLine {
  level: string
  obj: Record<string, unknown>
  msg: string
}

function recordingLog(lines: LogLine[]): InventoryWatchOptions['log'] {
  const at = (level: string) => (obj: object, msg: string) => {
    lines.push({ level, obj: obj as Record<string, unknown>, msg })
  }
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`)
    await sleep(5)
  }
}

interface Harness {
  server: FakeApiServer
  sink: RecordingSink
  lines: LogLine[]
  skipped: Array<[InventoryKind, string]>
  fieldsSkipped: Array<[InventoryKind, string]>
  syncedCalls: number
  watch: InventoryWatch
}

async function harness(
  t: { teardown(fn: () => unknown): void },
  seed: (server: FakeApiServer) => void = () => undefined,
  extra: Partial<InventoryWatchOptions> = {},
): Promise<Harness> {
  const server = await startFakeApiServer()
  seed(server)
  const sink = new RecordingSink()
  const lines: LogLine[] = []
  const h: Harness = {
    server,
    sink,
    lines,
    skipped: [],
    fieldsSkipped: [],
    syncedCalls: 0,
    watch: undefined as unknown as InventoryWatch,
  }
  h.watch = startInventoryWatch({
    http: kubeConfigHttp(server.kubeConfig()),
    sink,
    log: recordingLog(lines),
    metrics: {
      skipped: (kind, reason) => h.skipped.push([kind, reason]),
      fieldSkipped: (kind, field) => h.fieldsSkipped.push([kind, field]),
    },
    onSynced: () => h.syncedCalls++,
    retry: { initialMs: 10, maxMs: 80 },
    watchTimeoutSeconds: 60,
    ...extra,
  })
  t.teardown(async () => {
    await h.watch.close()
    await server.close()
  })
  return h
}

const seedCluster = (server: FakeApiServer): void => {
  server.put(node('a', { zone: 'z1' }))
  server.put(node('b', { zone: 'z2' }, { unschedulable: true }))
  server.put(imageSet('a', ['docker.io/library/nginx:1.27']))
  server.put(imageSet('b', ['docker.io/library/redis:7']))
  server.put(namespace('team-a', 'warn'))
  server.put(namespace('team-b'))
}

/** Watches opened for a path, as the fake apiserver logged them. */
const watchRequests = (server: FakeApiServer, path: string) =>
  server.requests.filter((r) => r.path === path && r.query.watch === 'true')
const listRequests = (server: FakeApiServer, path: string) =>
  server.requests.filter((r) => r.path === path && r.query.watch === undefined)

const NODES = '/api/v1/nodes'
const SETS = '/apis/neverpull.dev/v1alpha1/nodeimagesets'
const NAMESPACES = '/api/v1/namespaces'
const RUNTIME_CLASSES = '/apis/node.k8s.io/v1/runtimeclasses'
/** One watch per kind: Nodes, NodeImageSets, Namespaces, RuntimeClasses. */
const WATCHES = 4

// ---- tests ------------------------------------------------------------------------------

t.test('initial sync: all three resources land in the sink, then synced resolves once', async (t) => {
  const h = await harness(t, seedCluster)
  t.equal(h.watch.isSynced(), false, 'not synced before the lists are in')
  await h.watch.synced
  t.equal(h.watch.isSynced(), true)
  t.equal(h.syncedCalls, 1)

  t.same([...h.sink.nodes.keys()].sort(), ['a', 'b'])
  t.match(h.sink.nodes.get('a'), {
    name: 'a',
    labels: { zone: 'z1', 'kubernetes.io/hostname': 'a' },
    taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }],
    unschedulable: false,
    ready: true,
    statusImageNames: ['docker.io/library/pause:3.9'],
  })
  t.equal(h.sink.nodes.get('b')?.unschedulable, true)
  t.same([...h.sink.images.keys()].sort(), ['a', 'b'])
  t.match(h.sink.images.get('a'), {
    nodeName: 'a',
    runtime: { name: 'containerd' },
    images: [{ repoTags: ['docker.io/library/nginx:1.27'], size: 10 }],
    observedAt: Date.parse('2025-06-01T12:00:00Z'),
  })
  t.same([...h.sink.modes], [['team-a', 'warn']])
  t.ok(h.sink.calls.includes('setNamespaceMode team-b -'), 'unlabelled namespace clears its mode')
  t.same([...h.sink.namespacesSeen].sort(), ['team-a', 'team-b'], 'every namespace listed is seen, labelled or not')
  t.equal(h.sink.namespacesComplete, true, 'the Namespace list synced: a namespace not seen is newer')

  // Every watch resumes from its list's resourceVersion and asks for bookmarks and a timeout.
  await waitFor('three watches open', () => h.server.openWatches === WATCHES)
  for (const path of [NODES, SETS, NAMESPACES]) {
    t.equal(listRequests(h.server, path).length, 1, `one list of ${path}`)
    t.match(watchRequests(h.server, path)[0]?.query, {
      resourceVersion: /^\d+$/,
      allowWatchBookmarks: 'true',
      timeoutSeconds: '60',
    })
  }
  t.same(h.skipped, [])
})

t.test('the steer label: true and false are kept, other values are logged and count as unset', async (t) => {
  const labelled = (name: string, value: string): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { 'neverpull.dev/steer': value } },
  })
  const h = await harness(t, (server) => {
    seedCluster(server)
    server.put(labelled('steered', 'true'))
    server.put(labelled('opted-out', 'false'))
    server.put(labelled('typo', 'yes'))
  })
  await h.watch.synced
  t.same([...h.sink.steering].sort(), [
    ['opted-out', false],
    ['steered', true],
  ])
  t.ok(
    h.lines.some((l) => l.level === 'warn' && l.obj.value === 'yes' && l.obj.namespace === 'typo'),
    'an unknown value is logged',
  )
  h.server.remove('v1', 'Namespace', 'steered')
  await waitFor('deleted namespace forgets its label', () => !h.sink.steering.has('steered'))
  t.equal(h.sink.steering.get('opted-out'), false)
})

t.test('synced waits for every resource: a failing list is retried with backoff', async (t) => {
  const h = await harness(t, (server) => {
    seedCluster(server)
    server.failNext(3, 503, (r) => r.path === SETS && r.query.watch === undefined)
  })
  await h.watch.synced
  t.equal(listRequests(h.server, SETS).length, 4, 'three failures, then the list that worked')
  t.equal(h.sink.images.size, 2)
  const retries = h.lines.filter(
    (l) => l.level === 'warn' && l.obj.kind === 'NodeImageSet' && l.msg.includes('retrying'),
  )
  t.equal(retries.length, 3)
  t.same(
    retries.map((l) => l.obj.attempt),
    [1, 2, 3],
  )
})

t.test('add, modify and delete of each kind reach the sink incrementally', async (t) => {
  const h = await harness(t, seedCluster)
  await h.watch.synced
  await waitFor('watches open', () => h.server.openWatches === WATCHES)
  h.sink.calls.length = 0

  h.server.put(node('c', { zone: 'z3' }))
  await waitFor('node c added', () => h.sink.nodes.has('c'))
  h.server.put(node('a', { zone: 'z9' }))
  await waitFor('node a modified', () => h.sink.nodes.get('a')?.labels.zone === 'z9')
  h.server.remove('v1', 'Node', 'b')
  await waitFor('node b removed', () => !h.sink.nodes.has('b'))

  h.server.put(imageSet('c', ['docker.io/library/busybox:1.36']))
  await waitFor('image set c added', () => h.sink.images.has('c'))
  h.server.put(imageSet('a', ['docker.io/library/nginx:1.27', 'docker.io/library/nginx:1.28'], '2025-06-02T00:00:00Z'))
  await waitFor('image set a modified', () => h.sink.images.get('a')?.images.length === 2)
  t.equal(h.sink.images.get('a')?.observedAt, Date.parse('2025-06-02T00:00:00Z'))
  h.server.remove('neverpull.dev/v1alpha1', 'NodeImageSet', 'b')
  await waitFor('image set b removed', () => !h.sink.images.has('b'))

  h.server.put(namespace('team-c', 'enforce'))
  await waitFor('namespace team-c added', () => h.sink.modes.get('team-c') === 'enforce')
  h.server.put(namespace('team-a', 'audit'))
  await waitFor('namespace team-a modified', () => h.sink.modes.get('team-a') === 'audit')
  h.server.put(namespace('team-a'))
  await waitFor('team-a label removed', () => !h.sink.modes.has('team-a'))
  h.server.put(namespace('team-c', 'enforced'))
  await waitFor('unknown mode clears', () => !h.sink.modes.has('team-c'))
  t.ok(
    h.lines.some((l) => l.level === 'warn' && l.obj.value === 'enforced'),
    'unknown mode value is logged',
  )
  h.server.remove('v1', 'Namespace', 'team-c')
  await waitFor('namespace deleted', () => h.sink.calls.filter((c) => c === 'setNamespaceMode team-c -').length === 2)

  t.same(h.sink.calls, [
    'upsertNode c',
    'upsertNode a',
    'removeNode b',
    'upsertImages c',
    'upsertImages a',
    'removeImages b',
    'setNamespaceMode team-c enforce',
    'setNamespaceMode team-a audit',
    'setNamespaceMode team-a -',
    'setNamespaceMode team-c -',
    'setNamespaceMode team-c -',
  ])
  t.equal(listRequests(h.server, NODES).length, 1, 'no relist: everything came over the watch')
})

t.test(
  'the pullable-registries annotation of a namespace reaches the sink; a bad one is logged and ignored',
  async (t) => {
    const h = await harness(t, seedCluster)
    await h.watch.synced
    const annotated = (name: string, value: string): KubeObject => ({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name, annotations: { 'neverpull.dev/pullable-registries': value } },
    })
    h.server.put(annotated('air', 'registry.corp:5000, index.docker.io'))
    await waitFor('annotation seen', () => h.sink.pullable.has('air'))
    t.same([...h.sink.pullable.get('air')!.hosts], ['registry.corp:5000', 'docker.io'], 'parsed and normalised')
    h.server.put(annotated('air', 'https://registry.corp'))
    await waitFor('bad annotation clears', () => !h.sink.pullable.has('air'))
    t.ok(
      h.lines.some((l) => l.level === 'warn' && l.obj.namespace === 'air'),
      'the bad annotation is logged',
    )
    h.server.put(annotated('air', 'none'))
    await waitFor('none', () => h.sink.pullable.get('air')?.hosts.size === 0)
    h.server.remove('v1', 'Namespace', 'air')
    await waitFor('deleted namespace clears', () => !h.sink.pullable.has('air'))
  },
)

t.test('a malformed object is skipped with a log line and a metric; the last good data stays', async (t) => {
  const h = await harness(t, seedCluster)
  await h.watch.synced
  await waitFor('watches open', () => h.server.openWatches === WATCHES)
  const good = h.sink.images.get('a')

  const broken = imageSet('a', [])
  ;(broken.spec as Record<string, unknown>).images = 'not a list'
  h.server.put(broken)
  await waitFor('skip recorded', () => h.skipped.length === 1)
  t.same(h.skipped, [['NodeImageSet', 'malformed']])
  t.equal(h.sink.images.get('a'), good, 'previous good image list kept')
  const line = h.lines.find((l) => l.level === 'warn' && l.obj.kind === 'NodeImageSet')
  t.match(line, { obj: { name: 'a', reason: /malformed NodeImageSet: \/spec\/images must be array/ } })

  // Named after a different node: refused by toNodeImages, also skipped.
  const misnamed = imageSet('b', ['x'])
  ;(misnamed.spec as Record<string, unknown>).nodeName = 'a'
  h.server.put(misnamed)
  await waitFor('second skip', () => h.skipped.length === 2)
  t.equal(h.sink.images.get('b')?.nodeName, 'b')
  t.same(
    h.sink.images.get('b')?.images.map((i) => i.repoTags[0]),
    ['docker.io/library/redis:7'],
  )

  // A Node is never skipped whole for one field: the field is left out, the rest used.
  const oddNode = node('a', { zone: 'z9' }, { unschedulable: true })
  ;(oddNode.spec as Record<string, unknown>).taints = 'nope'
  h.server.put(oddNode)
  await waitFor('odd node used', () => h.sink.nodes.get('a')?.labels.zone === 'z9')
  t.equal(h.skipped.length, 2, 'not skipped as an object')
  t.same(h.fieldsSkipped, [['Node', 'spec.taints']], 'the field is counted')
  t.match(h.sink.nodes.get('a'), { unschedulable: true, taints: [], statusImageNames: ['docker.io/library/pause:3.9'] })
  t.match(
    h.lines.find((l) => l.level === 'debug' && l.obj.kind === 'Node' && l.obj.name === 'a'),
    {
      msg: 'inventory object used without the fields that could not be read',
      obj: { skipped: ['spec.taints is a string, not a list'] },
    },
  )
  h.server.put(node('a', { zone: 'z1' }))
  await waitFor('a good node again', () => h.sink.nodes.get('a')?.taints.length === 1)

  // A new object that was never good never reaches the sink; fixing it does.
  const fresh = imageSet('d', [])
  ;(fresh.spec as Record<string, unknown>).images = [{ repoTags: ['no id'] }]
  h.server.put(fresh)
  await waitFor('third skip', () => h.skipped.length === 3)
  t.notOk(h.sink.images.has('d'))
  h.server.put(imageSet('d', ['docker.io/library/alpine:3']))
  await waitFor('fixed object lands', () => h.sink.images.has('d'))
  h.server.put(imageSet('a', ['docker.io/library/nginx:1.29']))
  await waitFor('a recovers', () => h.sink.images.get('a')?.images[0]?.repoTags[0] === 'docker.io/library/nginx:1.29')
  t.equal(h.lines.filter((l) => l.level === 'error').length, 0, 'nothing escaped as an error')
})

t.test('a watch cut mid-stream resumes from its resourceVersion and picks up what changed meanwhile', async (t) => {
  const h = await harness(t, seedCluster)
  await h.watch.synced
  await waitFor('watches open', () => h.server.openWatches === WATCHES)
  h.sink.tracking = true
  const watchesBefore = watchRequests(h.server, NODES).length

  // The next two reconnects fail as well: the outage lasts a few backoff rounds.
  h.server.failNext(6, 503, (r) => r.query.watch === 'true')
  h.server.breakWatches()
  h.server.put(node('c'))
  h.server.remove('v1', 'Node', 'b')
  h.server.put(imageSet('a', ['docker.io/library/nginx:2']))
  h.server.put(namespace('team-b', 'enforce'))

  await waitFor('node c seen', () => h.sink.nodes.has('c'))
  await waitFor('node b gone', () => !h.sink.nodes.has('b'))
  await waitFor(
    'image set a changed',
    () => h.sink.images.get('a')?.images[0]?.repoTags[0] === 'docker.io/library/nginx:2',
  )
  await waitFor('namespace mode changed', () => h.sink.modes.get('team-b') === 'enforce')
  await waitFor('watches open again', () => h.server.openWatches === WATCHES)

  t.ok(watchRequests(h.server, NODES).length >= watchesBefore + 2, 'reconnected (after failed attempts)')
  t.equal(listRequests(h.server, NODES).length, 1, 'no relist needed: the history still had the changes')
  t.ok(
    h.lines.some((l) => l.level === 'warn' && /premature close/i.test(String(l.obj.err))),
    'the cut is logged',
  )
  t.ok(h.sink.minNodes >= 1 && h.sink.minImages >= 2, 'the sink was never emptied')

  // And live events keep flowing on the new streams.
  h.server.put(node('d'))
  await waitFor('node d seen', () => h.sink.nodes.has('d'))
})

t.test('history expired while disconnected: 410, relist, deletions reconciled without emptying the sink', async (t) => {
  const h = await harness(t, seedCluster)
  await h.watch.synced
  await waitFor('watches open', () => h.server.openWatches === WATCHES)
  h.sink.tracking = true
  h.sink.calls.length = 0

  h.server.breakWatches()
  h.server.remove('v1', 'Node', 'b')
  h.server.put(node('c'))
  h.server.put(node('a', { zone: 'z7' }))
  h.server.remove('neverpull.dev/v1alpha1', 'NodeImageSet', 'b')
  h.server.remove('v1', 'Namespace', 'team-a')
  h.server.expireHistory()

  await waitFor('node b reconciled away', () => !h.sink.nodes.has('b'))
  await waitFor('image set b reconciled away', () => !h.sink.images.has('b'))
  await waitFor('namespace team-a cleared', () => !h.sink.modes.has('team-a'))
  t.notOk(h.sink.namespacesSeen.has('team-a'), 'a namespace gone is no longer seen')
  t.ok(h.sink.namespacesSeen.has('team-b'))
  await waitFor('node c listed', () => h.sink.nodes.has('c'))
  await waitFor('node a updated', () => h.sink.nodes.get('a')?.labels.zone === 'z7')
  await waitFor('watches open again', () => h.server.openWatches === WATCHES)

  for (const path of [NODES, SETS, NAMESPACES, RUNTIME_CLASSES])
    t.equal(listRequests(h.server, path).length, 2, `relisted ${path}`)
  t.equal(h.lines.filter((l) => /410/.test(l.msg)).length, WATCHES, 'each resource logged its 410')
  // Removals come once the relist is complete: by then node c is in, so a and c were held.
  t.equal(h.sink.minNodes, 2, 'node a was held throughout')
  t.equal(h.sink.minImages, 1, 'image set a was held throughout')
  const calls = h.sink.calls
  t.ok(calls.indexOf('upsertNode c') < calls.indexOf('removeNode b'), 'upserts stream in before the removals')
  t.notOk(calls.includes('upsertImages a'), 'an unchanged resourceVersion is not converted again')
  t.same(
    h.sink.calls.filter((c) => c.startsWith('remove')).sort(),
    ['removeImages b', 'removeNode b'],
    'only what disappeared was removed',
  )

  h.server.put(node('e'))
  await waitFor('live after relist', () => h.sink.nodes.has('e'))
})

t.test('a watch the apiserver ends normally is resumed, not relisted', async (t) => {
  const h = await harness(t, seedCluster)
  await h.watch.synced
  await waitFor('watches open', () => h.server.openWatches === WATCHES)
  await sleep(1100) // past the "very short watch" threshold
  h.server.endWatches()
  h.server.put(node('c'))
  await waitFor('node c seen', () => h.sink.nodes.has('c'))
  await waitFor('watches open again', () => h.server.openWatches === WATCHES)
  t.equal(listRequests(h.server, NODES).length, 1)
  t.equal(h.lines.filter((l) => l.level === 'warn').length, 0, 'a normal end is not a failure')
})

t.test('a watch that keeps ending at once is retried with backoff, not in a loop', async (t) => {
  const h = await harness(t, seedCluster)
  await h.watch.synced
  await waitFor('watches open', () => h.server.openWatches === WATCHES)
  const before = watchRequests(h.server, NODES).length
  // A stream that carries an ERROR 500 event and ends: a broken server or proxy.
  const ending = setInterval(() => h.server.endWatches(), 2)
  t.teardown(() => clearInterval(ending))
  await sleep(300)
  clearInterval(ending)
  const attempts = watchRequests(h.server, NODES).length - before
  t.ok(attempts >= 2, `retried (${attempts} attempts)`)
  t.ok(attempts < 30, `with backoff (${attempts} attempts in 300 ms)`)
  t.ok(h.lines.some((l) => /very short watch/.test(String(l.obj.err))))
  h.server.put(node('z'))
  await waitFor('recovers', () => h.sink.nodes.has('z'))
})

t.test('garbage on the stream is ignored; an ERROR event other than 410 backs off and resumes', async (t) => {
  const h = await harness(t, seedCluster)
  await h.watch.synced
  await waitFor('watches open', () => h.server.openWatches === WATCHES)
  h.server.sendRaw('this is not json')
  h.server.sendRaw(JSON.stringify({ type: 'ADDED', object: null }))
  h.server.sendRaw(JSON.stringify({ type: 'MODIFIED', object: { kind: 'NodeImageSet' } }))
  h.server.put(node('c'))
  await waitFor('node c after the garbage', () => h.sink.nodes.has('c'))
  t.ok(h.lines.some((l) => l.msg === 'inventory watch event ignored' && l.obj.reason === 'event without an object'))
  t.ok(h.lines.some((l) => l.msg === 'inventory watch event ignored' && l.obj.reason === 'object without metadata'))
  t.equal(h.sink.nodes.size, 3)

  const listsBefore = listRequests(h.server, NODES).length
  h.server.sendRaw(
    JSON.stringify({
      type: 'ERROR',
      object: {
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        code: 500,
        reason: 'InternalError',
        message: 'etcd hiccup',
      },
    }),
  )
  h.server.endWatches()
  h.server.put(node('d'))
  await waitFor('node d after the error', () => h.sink.nodes.has('d'))
  t.ok(h.lines.some((l) => l.msg === 'inventory watch stream error' && l.obj.code === 500))
  t.ok(
    h.lines.some((l) => /watch stream error 500 InternalError: etcd hiccup/.test(String(l.obj.err))),
    'treated as a failure (backoff)',
  )
  t.equal(listRequests(h.server, NODES).length, listsBefore, 'resumed from its resourceVersion, no relist')
})

t.test('a bare Node (no spec, no status) from the list converts', async (t) => {
  const h = await harness(t, (server) => {
    server.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'bare' } })
  })
  await h.watch.synced
  t.same(h.sink.nodes.get('bare'), {
    name: 'bare',
    labels: {},
    taints: [],
    unschedulable: false,
    ready: undefined,
    statusImageNames: [],
  })
  t.same(h.skipped, [])
})

t.test('close() before the first sync rejects synced and stops all traffic', async (t) => {
  const server = await startFakeApiServer()
  t.teardown(() => server.close())
  seedCluster(server)
  // Lists that would take 10 s: close() returning well before that shows it aborted them.
  server.setLatency(10_000)
  const watch = startInventoryWatch({
    http: kubeConfigHttp(server.kubeConfig()),
    sink: new RecordingSink(),
    log: recordingLog([]),
    retry: { initialMs: 10, maxMs: 50 },
  })
  await waitFor('lists in flight', () => server.requests.length === WATCHES)
  const started = Date.now()
  await watch.close()
  t.ok(Date.now() - started < 5_000, 'close() aborts in-flight lists instead of waiting for them')
  await t.rejects(watch.synced, /closed before the first sync/)
  t.equal(watch.isSynced(), false)
  await sleep(300)
  t.equal(server.requests.length, WATCHES, 'no request after close')
  t.equal(server.openWatches, 0)
})

t.test('close() leaves no sockets or timers behind', async (t) => {
  const server = await startFakeApiServer()
  seedCluster(server)
  const count = (): Record<string, number> => {
    const counts: Record<string, number> = {}
    for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1
    return counts
  }
  const baseline = count()
  const watch = startInventoryWatch({
    http: kubeConfigHttp(server.kubeConfig()),
    sink: new RecordingSink(),
    log: recordingLog([]),
    retry: { initialMs: 10, maxMs: 50 },
  })
  await watch.synced
  await waitFor('watches open', () => server.openWatches === WATCHES)
  server.breakWatches() // leave a retry timer pending, too
  await watch.close()
  await waitFor('server saw the watches go', () => server.openWatches === 0)
  await server.close()
  await waitFor('sockets closed', () => (count().TCPSocketWrap ?? 0) <= (baseline.TCPSocketWrap ?? 0))
  t.pass('no sockets left')
  await waitFor('ref timers gone', () => (count().Timeout ?? 0) <= (baseline.Timeout ?? 0))
  t.equal(await watch.close().then(() => 'ok'), 'ok', 'close() is idempotent')
})

t.test('the initial list is paged with limit and continue, then watched from its resourceVersion', async (t) => {
  const h = await harness(
    t,
    (server) => {
      for (let i = 0; i < 12; i++) {
        const name = `n${String(i).padStart(2, '0')}`
        server.put(node(name))
        server.put(imageSet(name, [`docker.io/library/app:${i}`]))
        server.put(namespace(`ns-${name}`, 'audit'))
      }
    },
    { pageSize: 5 },
  )
  await h.watch.synced
  t.equal(h.sink.nodes.size, 12)
  t.equal(h.sink.images.size, 12)
  t.equal(h.sink.modes.size, 12)
  await waitFor('watches open', () => h.server.openWatches === WATCHES)
  for (const path of [NODES, SETS, NAMESPACES]) {
    const lists = listRequests(h.server, path)
    t.same(
      lists.map((r) => [r.query.limit, r.query.continue === undefined ? 'first' : 'continue', r.query.resourceVersion]),
      [
        ['5', 'first', undefined],
        ['5', 'continue', undefined],
        ['5', 'continue', undefined],
      ],
      `${path}: three pages of at most five, no resourceVersion=0 (the watch cache ignores limit)`,
    )
    t.not(lists[1]?.query.continue, lists[2]?.query.continue, 'each page continues where the last one ended')
    t.equal(
      watchRequests(h.server, path)[0]?.query.resourceVersion,
      String(h.server.resourceVersion),
      'watch starts at the list',
    )
  }
})

t.test('NodeImageSets are listed 50 to a page by default, Nodes 500', async (t) => {
  const h = await harness(t, (server) => {
    for (let i = 0; i < 60; i++) server.put(imageSet(`n${i}`, ['docker.io/library/pause:3.9']))
    server.put(node('a'))
  })
  await h.watch.synced
  t.same(
    listRequests(h.server, SETS).map((r) => r.query.limit),
    ['50', '50'],
  )
  t.same(
    listRequests(h.server, NODES).map((r) => r.query.limit),
    ['500'],
  )
  t.equal(h.sink.images.size, 60)
})

t.test('a continue token that expires mid-list restarts the list from the start', async (t) => {
  const h = await harness(
    t,
    (server) => {
      for (let i = 0; i < 7; i++) server.put(imageSet(`n${i}`, [`docker.io/library/app:${i}`]))
      seedCluster(server)
      // The second page's token is too old by the time we ask for it.
      server.failNext(1, 410, (r) => r.path === SETS && r.query.continue !== undefined)
    },
    { pageSize: 3 },
  )
  await h.watch.synced
  t.equal(h.sink.images.size, 9)
  const lists = listRequests(h.server, SETS).map((r) => (r.query.continue === undefined ? 'first' : 'continue'))
  t.same(lists, ['first', 'continue', 'first', 'continue', 'continue'], 'restarted once, then paged to the end')
  t.ok(h.lines.some((l) => l.level === 'info' && /continue token expired/.test(l.msg)))
  t.equal(h.lines.filter((l) => l.level === 'warn').length, 0, 'an expired token is not a failure')
  t.same(h.skipped, [])
})

t.test('a continue token that keeps expiring falls back to backoff, and the list still completes', async (t) => {
  const h = await harness(
    t,
    (server) => {
      for (let i = 0; i < 7; i++) server.put(imageSet(`n${i}`, [`docker.io/library/app:${i}`]))
      seedCluster(server)
      server.failNext(3, 410, (r) => r.path === SETS && r.query.continue !== undefined)
    },
    { pageSize: 3 },
  )
  await h.watch.synced
  t.equal(h.sink.images.size, 9)
  const retries = h.lines.filter(
    (l) => l.level === 'warn' && l.obj.kind === 'NodeImageSet' && l.msg.includes('retrying'),
  )
  t.equal(retries.length, 1, 'two restarts at once, the third expiry backs off')
  t.match(retries[0]?.obj.err, /410 Expired/)
})

t.test('a watch refused with HTTP 410 relists', async (t) => {
  const h = await harness(t, seedCluster)
  await h.watch.synced
  await waitFor('watches open', () => h.server.openWatches === WATCHES)
  h.server.failNext(1, 410, (r) => r.path === NODES && r.query.watch === 'true')
  h.server.breakWatches()
  h.server.remove('v1', 'Node', 'b')
  await waitFor('relisted nodes', () => listRequests(h.server, NODES).length === 2)
  await waitFor('node b gone', () => !h.sink.nodes.has('b'))
  await waitFor('watches open again', () => h.server.openWatches === WATCHES)
  t.equal(listRequests(h.server, SETS).length, 1, 'only the refused kind relists')
})

t.test('a bookmark moves the resourceVersion the next watch starts from', async (t) => {
  const h = await harness(t, seedCluster)
  await h.watch.synced
  await waitFor('watches open', () => h.server.openWatches === WATCHES)
  const before = watchRequests(h.server, SETS).length
  h.server.put(node('c'))
  h.server.put(namespace('team-z', 'warn'))
  h.server.bookmark()
  const at = String(h.server.resourceVersion)
  h.server.endWatches()
  await waitFor('sets re-watched', () => watchRequests(h.server, SETS).length === before + 1)
  t.equal(watchRequests(h.server, SETS)[before]?.query.resourceVersion, at, 'resumed from the bookmark')
  t.equal(listRequests(h.server, SETS).length, 1)
  t.equal(
    h.lines.filter((l) => l.level === 'warn').length,
    0,
    'a watch that got a bookmark is not a "very short watch"',
  )
})

/** A way to run the collector: `--expose-gc` is not among the flags tap passes. */
function collector(): () => void {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}

t.test('memory: synced NodeImageSets are not retained beyond the sink', async (t) => {
  const SETS_COUNT = 200
  const IMAGES = 1000
  const gc = collector()
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 3; i++) {
      gc()
      await new Promise((r) => setImmediate(r))
    }
  }
  const server = await startFakeApiServer()
  t.teardown(() => server.close())
  let jsonBytes = 0
  for (let n = 0; n < SETS_COUNT; n++) {
    const name = `node-${String(n).padStart(4, '0')}`
    const set = imageSet(
      name,
      Array.from({ length: IMAGES }, (_, i) => `registry.example.com/team-${i % 50}/app-${i}:v1.${n}.${i}`),
    )
    jsonBytes += JSON.stringify(server.put(set)).length
  }
  let upserts = 0
  const discard: InventorySink = {
    upsertNode: () => undefined,
    removeNode: () => undefined,
    upsertImages: () => void upserts++,
    removeImages: () => undefined,
    setNamespaceMode: () => undefined,
    setNamespacePullableRegistries: () => undefined,
    setNamespaceSteer: () => undefined,
    upsertRuntimeClass: () => undefined,
    removeRuntimeClass: () => undefined,
    setRuntimeClassesComplete: () => undefined,
    setNamespaceSeen: () => undefined,
    setNamespacesComplete: () => undefined,
  }
  await settle()
  const before = process.memoryUsage().heapUsed
  const watch = startInventoryWatch({
    http: kubeConfigHttp(server.kubeConfig()),
    sink: discard,
    log: recordingLog([]),
    watchTimeoutSeconds: 60,
  })
  t.teardown(() => watch.close())
  await watch.synced
  await waitFor('watches open', () => server.openWatches === WATCHES)
  await settle()
  const retained = process.memoryUsage().heapUsed - before
  t.equal(upserts, SETS_COUNT)
  t.comment(
    `JSON ${(jsonBytes / 1e6).toFixed(1)} MB; retained after sync ${(retained / 1e6).toFixed(2)} MB (${(retained / SETS_COUNT / 1e3).toFixed(2)} KB per NodeImageSet)`,
  )
  // An informer's cache keeps every object (~470 KB of heap per set here, more than its JSON).
  // What stays now is name -> resourceVersion; the allowance is for the heap's own noise.
  t.ok(retained < jsonBytes / 20, `retained ${retained} bytes is far below the ${jsonBytes} bytes of JSON`)
})

t.test(
  'a 1.19 Node with "names": null over the watch: every update reaches the index, and a fresh NodeImageSet outranks its status (issue 15)',
  async (t) => {
    const real = JSON.parse(
      readFileSync(new URL('../fixtures/kubelet-1.19/node-1.19-kubelet.json', import.meta.url), 'utf8'),
    ) as KubeObject & { spec: Record<string, unknown>; status: { images: Array<{ names: string[] | null }> } }
    const server = await startFakeApiServer()
    t.teardown(() => server.close())
    server.put(real)
    // The pod below is judged in a namespace the inventory has seen (one it has not only warns).
    server.put(namespace('np-e2e'))
    const index = new InventoryIndex({ staleAfterMs: 60_000 })
    const lines: LogLine[] = []
    const fieldsSkipped: string[] = []
    const objectsSkipped: string[] = []
    const watch = startInventoryWatch({
      http: kubeConfigHttp(server.kubeConfig()),
      sink: index,
      log: recordingLog(lines),
      metrics: {
        skipped: (kind) => objectsSkipped.push(kind),
        fieldSkipped: (_kind, field) => fieldsSkipped.push(field),
      },
      retry: { initialMs: 10, maxMs: 80 },
      watchTimeoutSeconds: 60,
    })
    t.teardown(() => watch.close())
    await watch.synced
    await waitFor('watches open', () => server.openWatches === WATCHES)

    const slot = index.slotOf('np-node-1')!
    const MYAPP = 'docker.io/library/myapp:1.0'
    t.equal(index.nodesWithImage(MYAPP)?.has(slot), true, 'status.images read despite the null names')
    t.equal(index.node(slot)?.ready, true)

    // The agent's fresh NodeImageSet no longer lists myapp:1.0 while the kubelet's cached
    // status still does: the NodeImageSet is the truth for the node (defect 2).
    const pod = (image: string): PodTemplateFacts => ({
      kind: 'Pod',
      perNode: false,
      mirror: false,
      placement: { nodeName: 'np-node-1', tolerations: [] },
      containers: [{ kind: 'container', name: 'app', image, pullPolicy: 'Never' }],
    })
    const subject = { kind: 'Pod', namespace: 'np-e2e', name: 'p', operation: 'CREATE' }
    const verdict = (image: string) =>
      decide(index, { subject, template: pod(image), mode: 'enforce', now: Date.now() }).verdict
    t.equal(verdict('myapp:1.0'), 'allow', 'no NodeImageSet: the kubelet status proves presence')
    const names = real.status.images.flatMap((i) => i.names ?? []).filter((n) => n !== MYAPP && !n.includes('@'))
    server.put({
      apiVersion: 'neverpull.dev/v1alpha1',
      kind: 'NodeImageSet',
      metadata: { name: 'np-node-1' },
      spec: {
        nodeName: 'np-node-1',
        images: names.map((n, i) => ({
          id: `sha256:${String(i).padStart(64, '0')}`,
          repoTags: [n],
          repoDigests: [],
          size: 1,
          pinned: false,
        })),
      },
      status: { observedTime: new Date().toISOString() },
    })
    await waitFor('the NodeImageSet to reach the index', () => index.imageSetCount === 1)
    t.equal(verdict('myapp:1.0'), 'deny', 'a fresh NodeImageSet without it outranks the status')
    t.equal(verdict('myapp:dev'), 'allow', 'what it lists is present')
    server.remove('neverpull.dev/v1alpha1', 'NodeImageSet', 'np-node-1')
    await waitFor('the NodeImageSet to leave the index', () => index.imageSetCount === 0)
    t.equal(verdict('myapp:1.0'), 'allow', 'without it, the status counts again')

    // What the issue did: remove a tag (the kubelet reports it gone), cordon the node, and
    // relabel and taint it, with the null entry still in the list.
    const next = structuredClone(real)
    next.status.images = next.status.images.filter((i) => !(i.names ?? []).includes(MYAPP))
    t.ok(
      next.status.images.some((i) => i.names === null),
      'the null entry is still there',
    )
    next.spec = {
      unschedulable: true,
      taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule', timeAdded: '2026-11-30T14:21:00Z' }],
    }
    next.metadata = { ...next.metadata, labels: { ...next.metadata?.labels, zone: 'b' } }
    server.put(next)
    await waitFor('the update to reach the index', () => index.nodesWithImage(MYAPP)?.has(slot) !== true)
    t.equal(index.node(slot)?.unschedulable, true, 'cordon seen')
    t.ok(bitsHas(index.labelValue('zone', 'b') ?? new Uint32Array(0), slot), 'label seen')
    t.ok(bitsHas(index.cordoned(), slot), 'cordon in the index')
    t.same(
      [...index.taintGroups()].map((g) => g.taint),
      [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }],
      'taint seen',
    )
    t.equal(index.nodesWithImage('docker.io/library/myapp:dev')?.has(slot), true, 'other images kept')
    t.same(objectsSkipped, [], 'the Node was never skipped')
    t.same(fieldsSkipped, [], 'null names is not an odd field')
    t.notOk(
      lines.some((l) => l.level === 'warn' || l.level === 'error'),
      'nothing to warn about',
    )
  },
)

// RuntimeClasses (node.k8s.io): v1 from 1.20, v1beta1 on 1.19. The RuntimeClass admission
// plugin (plugin/pkg/admission/runtimeclass) merges their scheduling into pods; the webhook
// needs them to place workload templates the same way.
const runtimeClass = (name: string, apiVersion = 'node.k8s.io/v1'): KubeObject => ({
  apiVersion,
  kind: 'RuntimeClass',
  metadata: { name },
  handler: 'runsc',
  scheduling: {
    nodeSelector: { sandbox: 'true' },
    tolerations: [{ key: 'sandbox', operator: 'Equal', value: 'gvisor', effect: 'NoSchedule' }],
  },
})

t.test('RuntimeClasses are listed and watched; their list marks the set complete', async (t) => {
  const h = await harness(t, (s) => {
    seedCluster(s)
    s.put(runtimeClass('gvisor'))
  })
  await h.watch.synced
  t.same(h.sink.runtimeClasses.get('gvisor'), {
    name: 'gvisor',
    handler: 'runsc',
    nodeSelector: { sandbox: 'true' },
    tolerations: [{ key: 'sandbox', operator: 'Equal', value: 'gvisor', effect: 'NoSchedule' }],
  })
  t.equal(h.sink.runtimeClassesComplete, true)
  await waitFor('watches open', () => h.server.openWatches === WATCHES)
  h.server.put(runtimeClass('kata'))
  await waitFor('kata added', () => h.sink.runtimeClasses.has('kata'))
  t.ok(h.server.remove('node.k8s.io/v1', 'RuntimeClass', 'gvisor'))
  await waitFor('gvisor removed', () => !h.sink.runtimeClasses.has('gvisor'))
})

t.test('1.19: RuntimeClasses come from node.k8s.io/v1beta1 when v1 is not served', async (t) => {
  const server = await startFakeApiServer({
    resources: [
      { group: 'node.k8s.io', version: 'v1beta1', plural: 'runtimeclasses', kind: 'RuntimeClass', namespaced: false },
    ],
  })
  t.teardown(() => server.close())
  seedCluster(server)
  server.put(runtimeClass('gvisor', 'node.k8s.io/v1beta1'))
  // v1 answers 404 as a 1.19 apiserver does.
  server.failNext(1000, 404, (r) => r.path.startsWith('/apis/node.k8s.io/v1/'))
  const sink = new RecordingSink()
  const watch = startInventoryWatch({
    http: kubeConfigHttp(server.kubeConfig()),
    sink,
    log: recordingLog([]),
    retry: { initialMs: 10, maxMs: 40 },
    watchTimeoutSeconds: 60,
  })
  t.teardown(() => watch.close())
  await watch.synced
  await waitFor('gvisor from v1beta1', () => sink.runtimeClasses.has('gvisor'))
  t.equal(sink.runtimeClassesComplete, true)
  t.ok(
    server.requests.some((r) => r.path === '/apis/node.k8s.io/v1beta1/runtimeclasses'),
    'listed v1beta1',
  )
})

t.test('RuntimeClasses that cannot be listed (RBAC, not served) do not hold the sync back', async (t) => {
  const server = await startFakeApiServer()
  t.teardown(() => server.close())
  seedCluster(server)
  server.failNext(100_000, 403, (r) => r.path.startsWith('/apis/node.k8s.io/'))
  const sink = new RecordingSink()
  const lines: LogLine[] = []
  const watch = startInventoryWatch({
    http: kubeConfigHttp(server.kubeConfig()),
    sink,
    log: recordingLog(lines),
    retry: { initialMs: 10, maxMs: 40 },
    watchTimeoutSeconds: 60,
  })
  t.teardown(() => watch.close())
  await watch.synced
  t.equal(sink.runtimeClassesComplete, false, 'unknown, not empty: a name is never taken as missing')
  t.ok(lines.some((l) => l.level === 'warn' && /RuntimeClasses cannot be listed/.test(l.msg)))
  t.same([...sink.nodes.keys()].sort(), ['a', 'b'], 'the rest of the inventory synced')
})
