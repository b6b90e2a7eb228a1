import { readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { checkPodReview } from '../src/admission/pod-check.js'
import { exampleInventory } from './helpers/fixtures.js'

// The README and `npm start` point people at these: each must do what its name says.
const dir = new URL('../examples/reviews/', import.meta.url)
const now = Date.now()
const inventory = exampleInventory(now)

for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
  t.test(file, async (t) => {
    const body = JSON.parse(readFileSync(new URL(file, dir), 'utf8')) as { request: { uid: string } }
    const { reply } = checkPodReview(body, { inventory, mode: 'enforce', now })
    const r = reply.response
    if (file.includes('-denied')) {
      t.equal(r.allowed, false)
      t.match(r.status?.message, /imagePullPolicy: Never/)
    } else if (file.includes('-warn')) {
      t.equal(r.allowed, true)
      t.ok((r.warnings ?? []).length > 0, 'warned')
    } else {
      t.same(r, { uid: body.request.uid, allowed: true }, 'silently allowed')
    }
  })
}
