import t from 'tap'
import { Histogram, Registry } from 'prom-client'
import { BucketHistogram } from '../../src/server/metrics.js'

// BucketHistogram counts on the request path and hands prom-client its state when scraped.
// Its exposition must be exactly what prom-client's own Histogram writes for the same
// values: this also fails if a prom-client release changes the internal state it fills.

const BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5]

function pair(): { ours: BucketHistogram; theirs: Histogram; ourRegistry: Registry; theirRegistry: Registry } {
  const ourRegistry = new Registry()
  const theirRegistry = new Registry()
  const config = { name: 'neverpull_admission_duration_seconds', help: 'Time to decide' }
  const ours = new BucketHistogram({ ...config, buckets: BUCKETS, registers: [ourRegistry] })
  const theirs = new Histogram({ ...config, buckets: BUCKETS, registers: [theirRegistry] })
  return { ours, theirs, ourRegistry, theirRegistry }
}

const CASES: Record<string, number[]> = {
  'no observations': [],
  'one fast review': [0.00003],
  'exactly on bounds (le is inclusive)': BUCKETS,
  'just above bounds': BUCKETS.map((b) => b * 1.0000001),
  'above the last bound: +Inf, sum and count only': [7.5, 60],
  zero: [0, 0, 0],
  'a spread, in any order': [0.3, 0.0001, 4.9, 0.02, 0.02, 0.00049, 1.7, 0.0026],
}

for (const [name, values] of Object.entries(CASES)) {
  t.test(name, async (t) => {
    const { ours, theirs, ourRegistry, theirRegistry } = pair()
    for (const v of values) {
      ours.record(v)
      theirs.observe(v)
    }
    t.equal(await ourRegistry.metrics(), await theirRegistry.metrics(), 'text exposition')
    t.same(await ourRegistry.getMetricsAsJSON(), await theirRegistry.getMetricsAsJSON(), 'JSON')
    // Scraped twice: the second scrape sees the same totals, not doubled ones.
    t.equal(await ourRegistry.metrics(), await theirRegistry.metrics(), 'text exposition, scraped again')
  })
}

t.test('counts keep growing across scrapes', async (t) => {
  const { ours, theirs, ourRegistry, theirRegistry } = pair()
  for (const round of [1, 2, 3]) {
    for (let i = 0; i < 10 * round; i++) {
      const v = (i % 7) * 0.0004 * round
      ours.record(v)
      theirs.observe(v)
    }
    t.equal(await ourRegistry.metrics(), await theirRegistry.metrics(), `after round ${round}`)
  }
  t.match(await ourRegistry.metrics(), /neverpull_admission_duration_seconds_count 60\n/)
})

t.test(
  'a value that is not a finite number is not counted (prom-client would throw on the request path)',
  async (t) => {
    const { ours, ourRegistry } = pair()
    ours.record(Number.NaN)
    ours.record(Number.POSITIVE_INFINITY)
    ours.record(0.001)
    t.match(await ourRegistry.metrics(), /neverpull_admission_duration_seconds_count 1\n/)
  },
)
