import { request } from 'node:https'
import t from 'tap'
import { startTestWebhook } from '../helpers/webhook.js'
import { review } from '../helpers/fixtures.js'
import { parseLogLine } from '../helpers/log-lines.js'
import type { TLSSocket } from 'node:tls'
import type { AdmissionReviewReply } from '../../src/admission/review.js'

function post(
  url: string,
  ca: string,
  body: unknown,
): Promise<{ status: number; json: AdmissionReviewReply; protocol: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/validate?timeout=10s`,
      { method: 'POST', ca, headers: { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = []
        const protocol = (res.socket as TLSSocket).getProtocol() ?? ''
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(Buffer.concat(chunks).toString()) as AdmissionReviewReply,
            protocol,
          })
        })
      },
    )
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

t.test('the webhook over real HTTPS, verified against the CA it was issued by', async (t) => {
  const { url, ca, lines } = await startTestWebhook(t)

  const body = review('deployment-update-image')
  const denied = await post(url, ca, body)
  t.equal(denied.status, 200)
  t.equal(denied.json.response.uid, body['request'].uid)
  t.equal(denied.json.response.allowed, false)
  t.equal(denied.protocol, 'TLSv1.3', 'TLS 1.3 preferred')
  const allowed = await post(url, ca, review('pod-create'))
  t.equal(allowed.json.response.allowed, true)

  await t.rejects(
    post(url, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', body),
    'a client with another CA refuses the server',
  )

  const log = lines.map(parseLogLine).find((l) => l.admission?.decision === 'deny')
  t.ok(log, 'one log line per admission')
  t.match(log?.admission, {
    uid: body['request'].uid,
    kind: 'Deployment',
    namespace: 'default',
    name: 'api',
    operation: 'UPDATE',
    user: body['request'].userInfo.username,
    decision: 'deny',
  })
})
