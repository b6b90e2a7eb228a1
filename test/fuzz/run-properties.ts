import fc from 'fast-check'
import type { Test } from 'tap'
import { createEnv, PROPERTIES, type FuzzEnv } from './properties.js'

/** Runs the named properties as tap subtests, `testRuns` cases each, with one shared app. */
export async function runProperties(t: Test, filter: (name: string) => boolean): Promise<void> {
  const env: FuzzEnv = await createEnv()
  t.teardown(() => env.app.close())
  // FUZZ_SEED reproduces a failure printed by fast-check (or by npm run fuzz).
  const seed =
    process.env['FUZZ_SEED'] === undefined
      ? Date.now() ^ (Math.random() * 0x100000000)
      : Number(process.env['FUZZ_SEED'])
  t.comment(`fast-check seed ${seed} (rerun with FUZZ_SEED=${seed})`)
  for (const def of PROPERTIES) {
    if (!filter(def.name)) continue
    await t.test(def.name, async (t) => {
      await fc.assert(def.build(env), { numRuns: def.testRuns, seed, endOnFailure: false })
      t.pass(`${def.testRuns} cases`)
    })
  }
  const slowest = [...env.slowest].map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ')
  t.comment(`slowest case per property: ${slowest}`)
}
