import t from 'tap'
import { kubeConfigHttp } from '../../src/kube/http.js'
import { httpListerWatcher } from '../../src/kube/lister-watcher.js'
import { ApiStatusError } from '../../src/kube/status.js'
import { decodeWatchLine, NdjsonDecoder, type WatchFrame } from '../../src/kube/watch.js'
import { startFakeApiServer, type KubeObject } from '../helpers/fake-apiserver.js'

// The watch stream's framing (newline-delimited JSON) and the HTTP ListerWatcher against the
// in-process apiserver: pages, refusals as ApiStatusErrors, frames, and the caller's abort.

t.test('lines are framed across chunks, several to a chunk, the last one held back until its end', (t) => {
  const d = new NdjsonDecoder()
  t.strictSame(d.push('{"a":1}\n{"b"'), ['{"a":1}'])
  t.strictSame(d.push(':2'), [])
  t.strictSame(d.push('}\n\n{"c":3}\n{"d"'), ['{"b":2}', '', '{"c":3}'])
  t.equal(d.end(), '{"d"', 'a stream that ends without a newline still has its last line')
  t.equal(d.end(), undefined)
  const blank = new NdjsonDecoder()
  blank.push('{}\n  ')
  t.equal(blank.end(), undefined, 'trailing blanks are no line')
  t.end()
})

t.test('a line that grows past the limit breaks the stream, after the lines before it', (t) => {
  const d = new NdjsonDecoder(10)
  t.strictSame(d.push('{"a":1}\n0123456789'), ['{"a":1}'])
  t.doesNotThrow(() => d.check(), 'at the limit')
  d.push('X')
  t.throws(() => d.check(), /watch event longer than 10 characters without a newline; the stream is broken/)
  t.end()
})

t.test('decoding: events, events without a type or object, lines that are not JSON, blank lines', (t) => {
  t.strictSame(decodeWatchLine('{"type":"ADDED","object":{"metadata":{"name":"a"}}}'), {
    ok: true,
    type: 'ADDED',
    object: { metadata: { name: 'a' } },
  })
  t.strictSame(decodeWatchLine('{"object":1}'), { ok: true, type: '', object: 1 })
  t.strictSame(decodeWatchLine('[1]'), { ok: true, type: '', object: undefined })
  t.strictSame(decodeWatchLine('{"type":"ADDED",'), { ok: false, line: '{"type":"ADDED",' })
  t.equal(decodeWatchLine(' \r'), undefined)
  t.end()
})

const NODES = '/api/v1/nodes'
const node = (name: string): KubeObject => ({ apiVersion: 'v1', kind: 'Node', metadata: { name } })

t.test('the HTTP ListerWatcher: paged lists, a watch from their resourceVersion, refusals', async (t) => {
  const server = await startFakeApiServer()
  t.teardown(() => server.close())
  for (const name of ['a', 'b', 'c']) server.put(node(name))
  const lw = httpListerWatcher(kubeConfigHttp(server.kubeConfig()), NODES)
  const signal = new AbortController().signal

  const first = await lw.list({ limit: 2, continue: '', signal })
  t.equal(first.items.length, 2)
  t.not(first.continue, '')
  const second = await lw.list({ limit: 2, continue: first.continue, signal })
  t.equal(second.items.length, 1)
  t.equal(second.continue, '')
  t.match(server.requests.at(-1), { path: NODES, query: { limit: '2', continue: first.continue } })

  const abort = new AbortController()
  const frames = await lw.watch({ resourceVersion: second.resourceVersion, timeoutSeconds: 30, signal: abort.signal })
  t.match(server.requests.at(-1), {
    query: {
      watch: 'true',
      resourceVersion: second.resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: '30',
    },
  })
  server.put(node('d'))
  const seen: WatchFrame[] = []
  const reading = (async () => {
    for await (const frame of frames) {
      seen.push(frame)
      abort.abort()
    }
  })()
  await t.rejects(reading, { name: 'AbortError' }, "the caller's abort ends the frames with its reason")
  t.match(seen, [{ ok: true, type: 'ADDED', object: { metadata: { name: 'd' } } }])

  server.expireHistory()
  server.failNext(1, 503, (r) => r.query.watch === undefined)
  await t.rejects(lw.list({ limit: 2, continue: '', signal }), { constructor: ApiStatusError, code: 503 })
  server.failNext(1, 410, (r) => r.query.watch === 'true')
  await t.rejects(lw.watch({ resourceVersion: '1', timeoutSeconds: 30, signal }), {
    constructor: ApiStatusError,
    code: 410,
  })
})

t.test('frames end when the apiserver ends the watch, and throw when the stream is cut', async (t) => {
  const server = await startFakeApiServer()
  t.teardown(() => server.close())
  server.put(node('a'))
  const lw = httpListerWatcher(kubeConfigHttp(server.kubeConfig()), NODES)
  const signal = new AbortController().signal
  const { resourceVersion } = await lw.list({ limit: 10, continue: '', signal })

  const ended = await lw.watch({ resourceVersion, timeoutSeconds: 30, signal })
  server.bookmark()
  server.endWatches()
  const types: string[] = []
  for await (const frame of ended) if (frame.ok) types.push(frame.type)
  t.strictSame(types, ['BOOKMARK'])

  const cut = (await lw.watch({ resourceVersion, timeoutSeconds: 30, signal }))[Symbol.asyncIterator]()
  server.sendRaw('not json')
  t.strictSame(await cut.next(), { done: false, value: { ok: false, line: 'not json' } })
  server.breakWatches()
  await t.rejects(cut.next(), /the watch stream was cut before its end \(premature close\)/)
})
