import t from 'tap'
import { Reflector, type ReflectorOptions, type ReflectorSource } from '../../src/inventory/reflector.js'
import type { ListerWatcher, ListPage, ListRequest, WatchFrame, WatchRequest } from '../../src/kube/lister-watcher.js'
import { ApiStatusError } from '../../src/kube/status.js'
import type { Clock } from '../../src/util/clock.js'
import { errorMessage } from '../../src/util/guards.js'

// The reflector's protocol alone: a scripted ListerWatcher (no HTTP) and a fake clock (no
// timers). Each case is the script of answers the reflector gets and the trace of what it
// did: requests, what it handed to its source, failures, and each wait the clock let pass.
// The same protocol against the in-process apiserver: reflector.test.ts and watch.test.ts.

// ---- a clock that only moves when told -----------------------------------------------------

interface Timer {
  due: number
  ms: number
  fire(): void
}

class FakeClock implements Clock {
  private t = 0
  private readonly timers: Timer[] = []

  constructor(private readonly trace: string[]) {}

  now(): number {
    return this.t
  }

  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve()
      const cancel = (): void => {
        this.timers.splice(this.timers.indexOf(timer), 1)
        resolve()
      }
      const timer: Timer = {
        due: this.t + ms,
        ms,
        fire: () => {
          signal.removeEventListener('abort', cancel)
          resolve()
        },
      }
      this.timers.push(timer)
      signal.addEventListener('abort', cancel, { once: true })
    })
  }

  /** Sleeps not yet over and not cancelled. */
  get pending(): number[] {
    return this.timers.map((timer) => timer.ms)
  }

  /** Moves time on to the earliest sleep's end and ends it; false when nobody sleeps. */
  fireNext(): boolean {
    if (this.timers.length === 0) return false
    this.timers.sort((a, b) => a.due - b.due)
    const timer = this.timers.shift() as Timer
    this.t = Math.max(this.t, timer.due)
    this.trace.push(`wait ${timer.ms}`)
    timer.fire()
    return true
  }

  /** Time passes without anyone's sleep ending (the steps below keep it shorter). */
  pass(ms: number): void {
    this.t += ms
  }
}

// ---- a ListerWatcher that plays a script --------------------------------------------------

type Obj = Record<string, unknown>
type Answer<T> = T | Error | 'hang' | 'stuck'
interface PageStep {
  rv: string
  items: unknown[]
  continue?: string
}
interface WatchStep {
  frames?: WatchFrame[]
  /** How long the watch ran before its end (a short one without events is an error). */
  runMs?: number
  /** 'end': the apiserver ended it; 'hang': nothing more comes until the signal aborts. */
  then: 'end' | 'hang' | Error
}
type Step = { list: Answer<PageStep> } | { watch: Answer<WatchStep> }

/** Rejects with the signal's reason when it aborts, as a request does. */
function hang(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason as Error)
    signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true })
  })
}

async function* play(step: WatchStep, signal: AbortSignal, clock: FakeClock): AsyncGenerator<WatchFrame> {
  for (const frame of step.frames ?? []) {
    if (signal.aborted) throw signal.reason as Error
    yield frame
  }
  if (step.runMs !== undefined) clock.pass(step.runMs)
  if (step.then === 'end') return
  if (step.then === 'hang') return await hang(signal)
  throw step.then
}

class ScriptedListerWatcher implements ListerWatcher {
  /** The script ran out: the reflector waits on a request that never answers. */
  exhausted = false

  constructor(
    private readonly steps: Step[],
    private readonly trace: string[],
    private readonly clock: FakeClock,
  ) {}

  private take<K extends 'list' | 'watch'>(kind: K): Answer<PageStep | WatchStep> | undefined {
    const step = this.steps.shift()
    if (step === undefined) {
      this.exhausted = true
      return undefined
    }
    if (!(kind in step)) {
      this.trace.push(`script expected ${Object.keys(step).join()}`)
      this.exhausted = true
      return undefined
    }
    return (step as Record<K, Answer<PageStep | WatchStep>>)[kind]
  }

  async list(req: ListRequest): Promise<ListPage> {
    this.trace.push(req.continue === '' ? 'list' : `list continue=${req.continue}`)
    const answer = this.take('list') as Answer<PageStep> | undefined
    if (answer === undefined || answer === 'hang') return hang(req.signal)
    if (answer === 'stuck') return new Promise(() => undefined)
    if (answer instanceof Error) throw answer
    return { items: [...answer.items], resourceVersion: answer.rv, continue: answer.continue ?? '' }
  }

  async watch(req: WatchRequest): Promise<AsyncIterable<WatchFrame>> {
    this.trace.push(`watch rv=${req.resourceVersion}`)
    const answer = this.take('watch') as Answer<WatchStep> | undefined
    if (answer === undefined || answer === 'hang') return hang(req.signal)
    if (answer === 'stuck') return new Promise(() => undefined)
    if (answer instanceof Error) throw answer
    return play(answer, req.signal, this.clock)
  }
}

// ---- objects, events and errors ------------------------------------------------------------

/** `name@rv` -> an object with that name and resourceVersion. */
const obj = (spec: string): Obj => {
  const [name, rv] = spec.split('@') as [string, string]
  return { kind: 'Thing', metadata: { name, resourceVersion: rv } }
}
const page = (rv: string, specs: string[], cont = ''): Step => ({
  list: { rv, items: specs.map(obj), continue: cont },
})
const event = (type: string, object: unknown): WatchFrame => ({ ok: true, type, object })
const added = (spec: string): WatchFrame => event('ADDED', obj(spec))
const modified = (spec: string): WatchFrame => event('MODIFIED', obj(spec))
const deleted = (spec: string): WatchFrame => event('DELETED', obj(spec))
const bookmark = (rv: string): WatchFrame => event('BOOKMARK', { kind: 'Thing', metadata: { resourceVersion: rv } })
const errorEvent = (code: number, reason: string, message: string): WatchFrame =>
  event('ERROR', { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message })
const gone = (): ApiStatusError => new ApiStatusError(410, 'Expired', '410 Expired: too old resource version')
const unavailable = (): ApiStatusError => new ApiStatusError(503, 'ServiceUnavailable', '503 ServiceUnavailable: busy')
const watched = (frames: WatchFrame[], then: WatchStep['then'] = 'end', runMs = 2000): Step => ({
  watch: { frames, then, runMs },
})

const E503 = '! 503 ServiceUnavailable: busy'
const E410 = '! 410 Expired: too old resource version'

// ---- the driver ----------------------------------------------------------------------------

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

interface Run {
  trace: string[]
  reflector: Reflector
  clock: FakeClock
  lw: ScriptedListerWatcher
  warnings: string[]
}

function setUp(steps: Step[], options: Partial<ReflectorOptions> = {}): Run {
  const trace: string[] = []
  const warnings: string[] = []
  const clock = new FakeClock(trace)
  const lw = new ScriptedListerWatcher(steps, trace, clock)
  const source: ReflectorSource = {
    kind: 'Thing',
    upsert: (o, name) => void trace.push(`upsert ${name}@${String((o.metadata as Obj).resourceVersion)}`),
    remove: (name) => void trace.push(`remove ${name}`),
    malformed: (_o, reason) => void trace.push(`malformed ${reason}`),
    failed: (err) => void trace.push(`! ${errorMessage(err)}`),
  }
  const noop = (): void => undefined
  const reflector = new Reflector(source, {
    listerWatcher: lw,
    log: {
      debug: noop,
      info: noop,
      warn: (_o, msg) => void warnings.push(msg),
      error: (_o, msg) => void warnings.push(msg),
    },
    retryInitialMs: 100,
    retryMaxMs: 500,
    listTimeoutMs: 5000,
    pageSize: 3,
    watchTimeoutSeconds: 60,
    onListed: () => void trace.push('listed'),
    clock,
    random: () => 0,
    ...options,
  })
  return { trace, reflector, clock, lw, warnings }
}

/**
 * Plays the script to its end: whenever the reflector is idle, the clock ends the earliest
 * sleep (a backoff, or a deadline when a request hangs). Then closes the reflector.
 */
async function playOut(steps: Step[]): Promise<Run & { pendingAfterClose: number[] }> {
  const run = setUp(steps)
  run.reflector.start()
  for (let i = 0; ; i++) {
    await settle()
    if (run.lw.exhausted) break
    if (i > 100 || !run.clock.fireNext()) {
      run.trace.push('stuck')
      break
    }
  }
  await run.reflector.close()
  return { ...run, pendingAfterClose: run.clock.pending }
}

interface Case {
  name: string
  steps: Step[]
  trace: string[]
  /** Names known at the end. */
  size?: number
}

const cases: Case[] = [
  {
    name: "list, then watch from the list's resourceVersion; each event moves it on",
    steps: [page('10', ['a@3', 'b@4']), watched([added('c@11'), modified('a@12'), deleted('b@13')])],
    trace: [
      'list',
      'upsert a@3',
      'upsert b@4',
      'listed',
      'watch rv=10',
      'upsert c@11',
      'upsert a@12',
      'remove b',
      'watch rv=13',
    ],
    size: 2,
  },
  {
    name: "a paged list follows continue tokens; the watch starts from the last page's resourceVersion",
    steps: [page('10', ['a@3', 'b@4', 'c@5'], 't1'), page('11', ['d@6'])],
    trace: [
      'list',
      'upsert a@3',
      'upsert b@4',
      'upsert c@5',
      'list continue=t1',
      'upsert d@6',
      'listed',
      'watch rv=11',
    ],
    size: 4,
  },
  {
    name: 'a watch refused with 410 relists at once; Replace removes what is gone, only changes are handed on',
    steps: [page('10', ['a@3', 'b@4', 'c@5']), { watch: gone() }, page('20', ['a@3', 'c@15', 'd@16'])],
    trace: [
      ...['list', 'upsert a@3', 'upsert b@4', 'upsert c@5', 'listed', 'watch rv=10'],
      ...['list', 'upsert c@15', 'upsert d@16', 'remove b', 'watch rv=20'],
    ],
    size: 3,
  },
  {
    name: 'a 410 ERROR event relists too, after the events before it',
    steps: [
      page('10', ['a@3']),
      watched([added('b@11'), errorEvent(410, 'Expired', 'too old resource version: 10 (15)'), added('never@12')]),
      page('20', ['b@11']),
    ],
    trace: ['list', 'upsert a@3', 'listed', 'watch rv=10', 'upsert b@11', 'list', 'remove a', 'watch rv=20'],
    size: 1,
  },
  {
    name: 'a watch that expires again right after its relist backs off before the next list',
    steps: [page('10', ['a@3']), { watch: gone() }, page('20', ['a@3']), { watch: gone() }, page('30', ['a@3'])],
    trace: [
      ...['list', 'upsert a@3', 'listed', 'watch rv=10', 'list', 'watch rv=20'],
      ...['! the watch expired again right after a relist', 'wait 50', 'list', 'watch rv=30'],
    ],
  },
  {
    name: 'a bookmark moves the resourceVersion and is progress: the backoff starts over, an instant end is no "very short watch"',
    steps: [
      page('10', ['a@3']),
      { watch: unavailable() },
      watched([bookmark('25')], new Error('cut'), 0),
      watched([bookmark('26')], 'end', 0),
    ],
    trace: [
      ...['list', 'upsert a@3', 'listed', 'watch rv=10', E503, 'wait 50'],
      ...['watch rv=10', '! cut', 'wait 50', 'watch rv=25', 'watch rv=26'],
    ],
  },
  {
    name: 'list failures back off 50, 100, 200, 250 (doubling, jittered down, capped); a success starts again at 50',
    steps: [
      ...[{ list: unavailable() }, { list: unavailable() }, { list: unavailable() }, { list: unavailable() }],
      page('10', ['a@3']),
      { watch: unavailable() },
    ],
    trace: [
      ...['list', E503, 'wait 50', 'list', E503, 'wait 100', 'list', E503, 'wait 200', 'list', E503, 'wait 250'],
      ...['list', 'upsert a@3', 'listed', 'watch rv=10', E503, 'wait 50', 'watch rv=10'],
    ],
  },
  {
    name: 'a watch that ends at once without events is a failure; one that ran a while is resumed without a wait',
    steps: [page('10', []), watched([], 'end', 0), watched([], 'end', 1000)],
    trace: [
      ...['list', 'listed', 'watch rv=10', '! very short watch: the stream ended within a second without events'],
      ...['wait 50', 'watch rv=10', 'watch rv=10'],
    ],
  },
  {
    name: 'a half-open watch is aborted 30 s after its timeout and resumed from its last resourceVersion',
    steps: [page('10', []), watched([added('c@11')], 'hang', 0)],
    trace: [
      ...['list', 'listed', 'watch rv=10', 'upsert c@11', 'wait 90000'],
      ...[
        '! the watch outlived its 60 s timeout by 30 s; the connection is likely half-open',
        'wait 50',
        'watch rv=11',
      ],
    ],
  },
  {
    name: 'a list page that does not answer times out and the list starts over',
    steps: [page('10', ['a@3'], 't1'), { list: 'hang' }, page('12', ['b@4'])],
    trace: [
      ...['list', 'upsert a@3', 'list continue=t1', 'wait 5000', '! list request timed out after 5000 ms'],
      ...['wait 50', 'list', 'upsert b@4', 'remove a', 'listed', 'watch rv=12'],
    ],
    size: 1,
  },
  {
    name: 'an expired continue token restarts the list from the start; only the restarted list decides removals',
    steps: [
      page('10', ['a@3', 'b@4', 'c@5']),
      { watch: gone() },
      page('20', ['a@3'], 't1'),
      { list: gone() },
      page('21', ['b@4']),
    ],
    trace: [
      ...['list', 'upsert a@3', 'upsert b@4', 'upsert c@5', 'listed', 'watch rv=10'],
      ...['list', 'list continue=t1', 'list', 'remove a', 'remove c', 'watch rv=21'],
    ],
    size: 1,
  },
  {
    name: 'a continue token that keeps expiring falls back to the backoff',
    steps: [
      ...[page('10', ['a@3'], 't1'), { list: gone() }, page('10', ['a@3'], 't2'), { list: gone() }],
      ...[page('10', ['a@3'], 't3'), { list: gone() }, page('11', ['a@3'])],
    ],
    trace: [
      ...['list', 'upsert a@3', 'list continue=t1', 'list', 'list continue=t2', 'list', 'list continue=t3', E410],
      ...['wait 50', 'list', 'listed', 'watch rv=11'],
    ],
  },
  {
    name: 'an ERROR event other than 410 backs off and resumes from the last resourceVersion',
    steps: [page('10', []), watched([added('c@11'), errorEvent(500, 'InternalError', 'etcd is sad')])],
    trace: [
      ...['list', 'listed', 'watch rv=10', 'upsert c@11'],
      ...['! watch stream error 500 InternalError: etcd is sad', 'wait 50', 'watch rv=11'],
    ],
  },
  {
    name: 'what cannot be used is reported or skipped, and the stream goes on',
    steps: [
      { list: { rv: '10', items: ['text', { metadata: { resourceVersion: '2' } }, obj('a@3')] } },
      watched([
        { ok: false, line: '{"type":"ADDED",' },
        event('ADDED', undefined),
        event('ADDED', { metadata: { resourceVersion: '11' } }),
        event('SQUASHED', obj('a@12')),
        added('b@13'),
      ]),
    ],
    trace: [
      ...['list', 'malformed list item is not an object', 'malformed object without metadata.name', 'upsert a@3'],
      ...['listed', 'watch rv=10', 'malformed object without metadata.name', 'upsert b@13', 'watch rv=13'],
    ],
    size: 2,
  },
  {
    name: 'a list page without a resourceVersion is of no use to the watch: refused before its items, retried',
    steps: [page('', ['a@3']), page('10', ['a@3'])],
    trace: [
      ...['list', '! list response without metadata.resourceVersion', 'wait 50'],
      ...['list', 'upsert a@3', 'listed', 'watch rv=10'],
    ],
  },
  {
    name: 'a relist while watching (a dropped stream, then 410) removes only what went while away',
    steps: [
      page('10', ['a@3', 'b@4']),
      watched([added('c@11')], new Error('the watch stream was cut before its end (premature close)'), 0),
      { watch: gone() },
      page('30', ['c@11', 'b@4']),
    ],
    trace: [
      ...['list', 'upsert a@3', 'upsert b@4', 'listed', 'watch rv=10', 'upsert c@11'],
      ...['! the watch stream was cut before its end (premature close)', 'wait 50', 'watch rv=11'],
      ...['list', 'remove a', 'watch rv=30'],
    ],
    size: 2,
  },
]

for (const c of cases) {
  t.test(c.name, async (t) => {
    const run = await playOut(c.steps)
    t.strictSame(run.trace, c.trace)
    if (c.size !== undefined) t.equal(run.reflector.size, c.size, 'names known')
    t.strictSame(run.pendingAfterClose, [], 'close() leaves no sleep behind')
  })
}

// ---- close(), wherever the loop is ---------------------------------------------------------

t.test('close during a backoff: the wait ends, nothing more is asked', async (t) => {
  const run = setUp([{ list: unavailable() }, page('10', [])])
  run.reflector.start()
  await settle()
  t.strictSame(run.trace, ['list', E503])
  t.strictSame(run.clock.pending, [50], 'only the backoff sleeps (the list deadline was cancelled)')
  await run.reflector.close()
  await settle()
  t.strictSame(run.trace, ['list', E503], 'no list after close')
  t.strictSame(run.clock.pending, [])
})

t.test('close during a watch: the stream is aborted, which is no failure, and nothing more is asked', async (t) => {
  const run = setUp([page('10', ['a@3']), watched([added('b@11')], 'hang', 0)])
  run.reflector.start()
  await settle()
  t.strictSame(run.trace, ['list', 'upsert a@3', 'listed', 'watch rv=10', 'upsert b@11'])
  t.strictSame(run.clock.pending, [90000], 'the watch deadline: timeoutSeconds + 30 s')
  await run.reflector.close()
  await settle()
  t.strictSame(run.trace, ['list', 'upsert a@3', 'listed', 'watch rv=10', 'upsert b@11'])
  t.strictSame(run.clock.pending, [])
  t.strictSame(run.warnings, [], 'nothing logged as a failure')
})

t.test('close during a list: what the aborted list brought is not announced as listed', async (t) => {
  const run = setUp([page('10', ['a@3'], 't1'), { list: 'hang' }])
  run.reflector.start()
  await settle()
  await run.reflector.close()
  await settle()
  t.strictSame(run.trace, ['list', 'upsert a@3', 'list continue=t1'])
  t.strictSame(run.clock.pending, [])
})

t.test('close waits for a loop stuck outside our control only as long as the clock says (2 s)', async (t) => {
  const run = setUp([{ list: 'stuck' }])
  run.reflector.start()
  await settle()
  let closed = false
  const closing = run.reflector.close().then(() => (closed = true))
  await settle()
  t.equal(closed, false, 'still waiting for the loop')
  t.strictSame(run.clock.pending, [5000, 2000], 'the stuck list deadline, and the close wait')
  t.ok(run.clock.fireNext())
  await closing
  t.strictSame(run.trace, ['list', 'wait 2000'])
  t.equal(closed, true)
})

t.test('start after close, and a second start, do nothing', async (t) => {
  const run = setUp([page('10', [])])
  run.reflector.start()
  run.reflector.start()
  await settle()
  await run.reflector.close()
  run.reflector.start()
  await settle()
  t.strictSame(run.trace, ['list', 'listed', 'watch rv=10'])
})

t.test(
  'no watch timeout given: each watch asks for 300-600 s, drawn with the injected random (client-go)',
  async (t) => {
    for (const [random, seconds] of [
      [0, 300],
      [0.5, 450],
      [0.999, 599],
    ] as const) {
      const run = setUp([page('10', []), watched([], 'hang', 0)], {
        watchTimeoutSeconds: undefined,
        random: () => random,
      })
      run.reflector.start()
      await settle()
      t.strictSame(run.trace, ['list', 'listed', 'watch rv=10'])
      t.strictSame(run.clock.pending, [(seconds + 30) * 1000], `random ${random}: timeoutSeconds ${seconds} + 30 s`)
      await run.reflector.close()
    }
  },
)
