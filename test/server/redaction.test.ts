import { request } from 'node:https'
import t from 'tap'
import { startTestWebhook } from '../helpers/webhook.js'
import { review, reviewWith, type FixtureNodeImageSet, type FixtureReview } from '../helpers/fixtures.js'
import { parseLogLine, type LogLine } from '../helpers/log-lines.js'
import type { AdmissionReviewReply } from '../../src/admission/review.js'

// No credential or secret-looking value that reaches the webhook may reach its logs: not the
// apiserver's headers, not userInfo.extra, not the object (env values, annotations), not a
// body the webhook could not parse. The server runs as in production, at log level trace.

const SECRETS = {
  bearer: 'secret-token-3f9a0c',
  cookie: 'cookie-secret-77d1',
  apiKey: 'apikey-secret-5b2e',
  basic: Buffer.from('admin:basic-secret-19c4').toString('base64'),
  credentialId: 'JTI=credential-secret-a6f0',
  extra: 'extra-secret-0e4d',
  env: 'env-secret-value-91ab',
  envFrom: 'AKIAEXAMPLESECRET42',
  annotation: 'annotation-secret-55fe',
  lastApplied: 'last-applied-secret-8c3d',
  query: 'query-secret-12aa',
  badJson: 'json-secret-68b0',
  malformed: 'malformed-secret-3c9e',
  oversize: 'oversize-secret-40f1',
  nis: 'nis-secret-7d22',
}

type Reply = { status: number; body: string }

function send(
  url: string,
  ca: string,
  method: string,
  path: string,
  body: string | undefined,
  headers: Record<string, string>,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${path}`,
      { method, ca, agent: false, headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

const apiserverHeaders = {
  authorization: `Bearer ${SECRETS.bearer}`,
  cookie: `session=${SECRETS.cookie}; csrf=${SECRETS.cookie}`,
  'x-api-key': SECRETS.apiKey,
  'user-agent': 'kube-apiserver-admission',
}

/** userInfo as a 1.30+ apiserver sends it for a pod-bound token, with secret-looking extras. */
function userInfo(username: string) {
  return {
    username,
    uid: 'b1946ac9-2d6f-4a0e-9f32-5c1e8d7a4b60',
    groups: ['system:authenticated'],
    extra: {
      'authentication.kubernetes.io/credential-id': [SECRETS.credentialId],
      'example.com/session-token': [SECRETS.extra],
      'authentication.kubernetes.io/node-name': ['node-a'],
    },
  }
}

/** The AdmissionReview a response carries. */
function replyOf(res: { body: string }): AdmissionReviewReply {
  return JSON.parse(res.body) as AdmissionReviewReply
}

/** A Pod review whose containers carry secrets in env, and annotations that look like tokens. */
function podWithSecrets(): FixtureReview {
  const body = review('pod-create')
  const r = body['request']
  r.userInfo = userInfo('jane@example.com')
  const app = r.object.spec.containers[0]
  app.env = [
    { name: 'DB_PASSWORD', value: SECRETS.env },
    { name: 'AWS_ACCESS_KEY_ID', value: SECRETS.envFrom },
    { name: 'API_TOKEN', valueFrom: { secretKeyRef: { name: 'api', key: 'token' } } },
  ]
  const annotations = r.object.metadata.annotations!
  annotations['example.com/token'] = SECRETS.annotation
  annotations['kubectl.kubernetes.io/last-applied-configuration'] += JSON.stringify({ password: SECRETS.lastApplied })
  return body
}

t.test('no token, cookie, credential or object value appears in any log line', async (t) => {
  const { url, ca, lines } = await startTestWebhook(t, { logLevel: 'trace' })
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    send(url, ca, 'POST', path, typeof body === 'string' ? body : JSON.stringify(body), {
      ...apiserverHeaders,
      ...headers,
    })

  // Allowed, warned and denied pod reviews, with secrets everywhere but in what is logged.
  const allowed = podWithSecrets()
  t.equal(replyOf(await post('/validate?timeout=10s', allowed)).response.allowed, true)
  const deniedBody = podWithSecrets()
  deniedBody['request'].object.spec.containers[0].image = 'myapp:1.1'
  t.equal(
    replyOf(await post('/validate', deniedBody, { authorization: `Basic ${SECRETS.basic}` })).response.allowed,
    false,
  )
  const deployment = review('deployment-update-image')
  deployment['request'].userInfo = userInfo('ci-bot')
  deployment['request'].object.spec.template.spec.containers[0].env = [{ name: 'TOKEN', value: SECRETS.env }]
  t.equal(replyOf(await post('/validate', deployment)).response.allowed, false)
  // A workload the webhook cannot read: the error names the field, never its value.
  const malformedObject = podWithSecrets()
  Object.assign(malformedObject['request'].object.spec.containers[0], { image: { secret: SECRETS.malformed } })
  t.equal(replyOf(await post('/validate', malformedObject)).response.status?.code, 400)
  // Malformed envelope, broken JSON, oversized body, unknown route with a token in the query.
  const envelope = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: 42, token: SECRETS.malformed },
  }
  t.equal(replyOf(await post('/validate', envelope)).response.status?.code, 400)
  t.equal((await post('/validate', `{"request": {"token": "${SECRETS.badJson}"`)).status, 400)
  t.equal(
    (await post('/validate', `{"token":"${SECRETS.oversize}","pad":"${'x'.repeat(7 * 1024 * 1024)}"}`)).status,
    413,
  )
  t.equal((await send(url, ca, 'GET', `/nope?access_token=${SECRETS.query}`, undefined, apiserverHeaders)).status, 404)
  t.equal((await send(url, ca, 'GET', `/healthz?token=${SECRETS.query}`, undefined, apiserverHeaders)).status, 200)

  // NodeImageSet writes: a forged one (denied, logged at warn) and an agent's (debug).
  const nis = (username: string) => {
    const body = reviewWith<FixtureNodeImageSet>('pod-create', {
      apiVersion: 'neverpull.dev/v1alpha1',
      kind: 'NodeImageSet',
      metadata: { name: 'node-a', annotations: { 'example.com/token': SECRETS.nis } },
      spec: {
        nodeName: 'node-a',
        images: [{ id: 'sha256:' + 'c'.repeat(64), repoTags: [`docker.io/library/app:${SECRETS.nis}`] }],
      },
    })
    const r = body['request']
    r.kind = { group: 'neverpull.dev', version: 'v1alpha1', kind: 'NodeImageSet' }
    r.resource = { group: 'neverpull.dev', version: 'v1alpha1', resource: 'nodeimagesets' }
    r.name = 'node-a'
    delete r.namespace
    r.userInfo = userInfo(username)
    return body
  }
  t.equal(replyOf(await post('/validate-nodeimageset', nis('mallory'))).response.allowed, false)
  t.equal(
    replyOf(await post('/validate-nodeimageset', nis('system:serviceaccount:neverpull-system:neverpull-guard-agent')))
      .response.allowed,
    true,
  )
  const badNis = nis('kubernetes-admin')
  badNis['request'].userInfo.groups!.push('system:masters')
  Object.assign(badNis['request'].object.spec.images[0]!, { id: { token: SECRETS.nis } })
  t.equal(replyOf(await post('/validate-nodeimageset', badNis)).response.allowed, false)

  const log = lines.join('')
  t.ok(lines.length >= 10, `the webhook did log (${lines.length} lines)`)
  for (const [what, secret] of Object.entries(SECRETS)) {
    t.notOk(log.includes(secret), `${what} is not in the logs`)
  }
  t.notMatch(log, /Bearer|Basic |cookie|authorization|x-api-key/i, 'no header is logged')

  const admissions = lines
    .map(parseLogLine)
    .filter((l): l is LogLine & { admission: object } => l.admission !== undefined)
  t.equal(admissions.length, 8, 'one line per review, envelope errors included')
  const allowedKeys = [
    'uid',
    'kind',
    'namespace',
    'name',
    'operation',
    'user',
    'dryRun',
    'decision',
    'mode',
    'outcome',
    'findings',
    'reason',
    'writerNode',
    'error',
  ]
  for (const line of admissions) {
    t.same(
      Object.keys(line.admission).filter((k) => !allowedKeys.includes(k)),
      [],
      `only the documented fields (${String(line.admission.uid)})`,
    )
  }
  t.ok(
    admissions.some((l) => l.admission.user === 'jane@example.com' && l.admission.decision === 'deny'),
    'what is logged is still useful',
  )
})
