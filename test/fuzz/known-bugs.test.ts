import t from 'tap'
import { checkPodReview } from '../../src/admission/pod-check.js'
import type { AdmissionReviewReply } from '../../src/admission/review.js'
import { createEnv, checkReply, NOW } from './properties.js'

// Bugs the properties found in src/, kept as regression tests.

const PROTOTYPE_KINDS = ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf']

function reviewOfKind(kind: string): Record<string, unknown> {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'b2c0c1de-0000-4000-8000-000000000001',
      kind: { group: '', version: 'v1', kind },
      operation: 'CREATE',
      namespace: 'default',
      object: { spec: {} },
    },
  }
}

t.test(
  'a review whose kind is an Object.prototype property is answered, not thrown (kinds were looked up in a plain object)',
  async (t) => {
    const env = await createEnv()
    t.teardown(() => env.app.close())
    for (const kind of PROTOTYPE_KINDS) {
      const body = reviewOfKind(kind)
      let reply: unknown
      t.doesNotThrow(() => {
        reply = checkPodReview(body, { inventory: env.inventory, mode: 'enforce', now: NOW }).reply
      }, kind)
      if (reply !== undefined) {
        t.doesNotThrow(() => checkReply(body, reply), kind)
        t.equal(
          (reply as { response: { allowed: boolean } }).response.allowed,
          true,
          `${kind}: not a kind this webhook checks`,
        )
      }
      // Over HTTP the route's catch hides it as "could not check this object (internal error)".
      const res = await env.app.inject({ method: 'POST', url: '/validate', payload: body })
      t.equal(res.statusCode, 200, kind)
      t.notMatch(
        res.json<AdmissionReviewReply>().response.warnings?.join('\n') ?? '',
        /internal error/,
        `${kind}: no internal error`,
      )
    }
  },
)

t.test('a review whose kind has no group is malformed: 400, uid echoed', async (t) => {
  const body = reviewOfKind('Pod')
  delete ((body['request'] as Record<string, unknown>)['kind'] as Record<string, unknown>)['group']
  const env = await createEnv()
  t.teardown(() => env.app.close())
  const { reply } = checkPodReview(body, { inventory: env.inventory, mode: 'enforce', now: NOW })
  t.equal(reply.response.allowed, false)
  t.equal(reply.response.status?.code, 400)
  t.equal(reply.response.uid, 'b2c0c1de-0000-4000-8000-000000000001')
  t.match(reply.response.status?.message, /request.kind must have required property 'group'/)
})
