import t from 'tap'
import { backoffDelay } from '../../src/util/backoff.js'
import { timerClock } from '../../src/util/clock.js'

t.test('backoff: doubling from initial, capped, jitter in the upper half', (t) => {
  const policy = { initialMs: 100, maxMs: 1000 }
  t.strictSame(
    [1, 2, 3, 4, 5, 6].map((n) => backoffDelay(policy, n)),
    [100, 200, 400, 800, 1000, 1000],
  )
  t.equal(backoffDelay(policy, 0), 100, 'attempt 0 counts as the first')
  t.equal(backoffDelay(policy, 10_000), 1000, 'a huge attempt stays finite')
  t.equal(backoffDelay({ initialMs: 500, maxMs: 100 }, 3), 500, 'a cap below the start is the start')
  const jitter = { ...policy, jitter: true }
  t.equal(
    backoffDelay(jitter, 3, () => 0),
    200,
    'lowest: half',
  )
  t.equal(
    backoffDelay(jitter, 3, () => 0.999999),
    400,
    'highest: all of it',
  )
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay(jitter, 4)
    t.ok(d >= 400 && d <= 800, `${d} in [400, 800]`)
  }
  t.end()
})

t.test('timer clock: sleeps, and an abort ends the sleep at once', async (t) => {
  // An unref'd timer would let this test process exit before it fires: that is its point.
  const clock = timerClock()
  const before = clock.now()
  await clock.sleep(5, new AbortController().signal)
  t.ok(clock.now() >= before)
  const controller = new AbortController()
  const long = clock.sleep(60_000, controller.signal)
  controller.abort()
  await long
  const aborted = new AbortController()
  aborted.abort()
  await clock.sleep(60_000, aborted.signal)
  t.pass('neither waited a minute')
})
