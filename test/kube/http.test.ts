import { createServer } from 'node:https'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ensureCertificates } from '../../src/certs/files.js'
import { inClusterHttp } from '../../src/kube/http.js'

// The agent's in-cluster client against a real HTTPS server: the service account's token
// and CA as the kubelet projects them, a token rotated between two requests, a server with
// a certificate from another CA refused.

t.test('in-cluster requests: service-account token, cluster CA, rotation', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'neverpull-sa-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const certs = await ensureCertificates({
    outDir: join(dir, 'pki'),
    service: 'kubernetes',
    namespace: 'default',
    hosts: ['127.0.0.1'],
    days: 30,
    force: false,
    now: new Date(),
  })
  const sa = join(dir, 'sa')
  await (await import('node:fs/promises')).mkdir(sa)
  await writeFile(join(sa, 'ca.crt'), await readFile(certs.paths.caCert))
  await writeFile(join(sa, 'token'), 'token-one\n')

  const seen: Array<{ method?: string; url?: string; auth?: string; type?: string; body: string }> = []
  const server = createServer(
    { cert: await readFile(certs.paths.cert), key: await readFile(certs.paths.key) },
    (req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString()))
      req.on('end', () => {
        seen.push({
          method: req.method,
          url: req.url,
          auth: req.headers.authorization,
          type: req.headers['content-type'],
          body,
        })
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ kind: 'Node', metadata: { name: 'node-a', uid: 'u1' } }))
      })
    },
  )
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  const port = String((server.address() as AddressInfo).port)

  const http = inClusterHttp({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port }, sa)
  t.equal(http.server, `https://127.0.0.1:${port}`)
  const first = await http.request({ method: 'GET', path: '/api/v1/nodes/node-a', timeoutMs: 5000 })
  t.equal(first.status, 200)
  t.match(JSON.parse(first.body), { metadata: { uid: 'u1' } })
  await writeFile(join(sa, 'token'), 'token-two\n')
  await http.request({
    method: 'PATCH',
    path: '/apis/x/v1/y/z?force=true',
    body: '{"a":1}',
    contentType: 'application/apply-patch+yaml',
    timeoutMs: 5000,
  })
  t.same(
    seen.map((s) => [s.method, s.url, s.auth, s.type ?? null, s.body]),
    [
      ['GET', '/api/v1/nodes/node-a', 'Bearer token-one', null, ''],
      ['PATCH', '/apis/x/v1/y/z?force=true', 'Bearer token-two', 'application/apply-patch+yaml', '{"a":1}'],
    ],
    'the rotated token is used at once; the body and content type are sent as given',
  )

  const other = await ensureCertificates({
    outDir: join(dir, 'other'),
    service: 'x',
    namespace: 'y',
    hosts: ['127.0.0.1'],
    days: 30,
    force: false,
    now: new Date(),
  })
  const otherSa = join(dir, 'other-sa')
  await (await import('node:fs/promises')).mkdir(otherSa)
  await writeFile(join(otherSa, 'ca.crt'), await readFile(other.paths.caCert))
  await writeFile(join(otherSa, 'token'), 't')
  await t.rejects(
    inClusterHttp({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port }, otherSa).request({
      method: 'GET',
      path: '/',
      timeoutMs: 5000,
    }),
    /self.signed|unable to verify|certificate/i,
    'a server whose certificate the cluster CA did not sign is refused',
  )
})

t.test('outside a cluster the error says what to do', async (t) => {
  t.throws(() => inClusterHttp({}), /not running in a cluster: KUBERNETES_SERVICE_HOST is not set; give --kubeconfig/)
})
