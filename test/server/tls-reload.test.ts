import { X509Certificate } from 'node:crypto'
import { mkdir, readFile, rename, symlink, writeFile } from 'node:fs/promises'
import { Agent, request, type Agent as HttpsAgent } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { connect, type TLSSocket } from 'node:tls'
import { setTimeout as sleep } from 'node:timers/promises'
import fastify from 'fastify'
import t from 'tap'
import { ensureCertificates } from '../../src/certs/files.js'
import { generateCa, generateServing, type CertificatePair } from '../../src/certs/generate.js'
import { pairProblem, watchTls, type TlsFiles } from '../../src/server/tls-reload.js'
import { tmpDir, type Teardown } from '../certs/helpers.js'
import { localCertificates } from '../helpers/local-webhook.js'

interface Collector {
  changes: TlsFiles[]
  errors: Error[]
  next(): Promise<TlsFiles>
  nextError(): Promise<Error>
  // Properties, not methods: the watcher is handed them unbound.
  onChange: (files: TlsFiles) => void
  onError: (err: Error) => void
}

function collector(): Collector {
  const changes: TlsFiles[] = []
  const errors: Error[] = []
  let waitChange: ((f: TlsFiles) => void) | undefined
  let waitError: ((e: Error) => void) | undefined
  return {
    changes,
    errors,
    next: () => new Promise((resolve) => (waitChange = resolve)),
    nextError: () => new Promise((resolve) => (waitError = resolve)),
    onChange: (files) => {
      changes.push(files)
      waitChange?.(files)
    },
    onError: (err) => {
      errors.push(err)
      waitError?.(err)
    },
  }
}

/** A CA and two serving pairs it signed (a, then b for host "b"), and where a test writes them. */
async function twoPairs(
  t: Teardown,
): Promise<{ a: CertificatePair; b: CertificatePair; certPath: string; keyPath: string }> {
  const dir = await tmpDir(t)
  const now = new Date()
  const ca = generateCa({ commonName: 'ca', days: 10, now })
  const a = generateServing({ ca, service: 's', namespace: 'n', hosts: [], days: 10, now })
  const b = generateServing({ ca, service: 's', namespace: 'n', hosts: ['b'], days: 10, now })
  return { a, b, certPath: join(dir, 'tls.crt'), keyPath: join(dir, 'tls.key') }
}

function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

interface Fetched {
  status: number | undefined
  serial: string
  localPort: number | undefined
  reusedSocket: boolean
  socket: TLSSocket
}

function get(port: number, agent: HttpsAgent): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      // Read now: once the body ends the socket goes back to the agent's pool.
      const socket = res.socket as TLSSocket
      const fetched = {
        status: res.statusCode,
        serial: socket.getPeerX509Certificate()?.serialNumber ?? '',
        localPort: socket.localPort,
        reusedSocket: req.reusedSocket,
        socket,
      }
      res.resume()
      res.on('end', () => resolve(fetched))
    })
    req.on('error', reject)
    req.end()
  })
}

function handshakeSerial(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca }, () => {
      const serial = socket.getPeerX509Certificate()?.serialNumber ?? ''
      socket.end()
      resolve(serial)
    })
    socket.on('error', reject)
  })
}

t.test('Fastify serves the renewed certificate without dropping a kept-alive connection', async (t) => {
  const dir = await tmpDir(t)
  const first = await ensureCertificates({
    outDir: dir,
    service: 'neverpull-guard',
    namespace: 'neverpull-system',
    hosts: ['127.0.0.1'],
    days: 30,
    force: false,
    now: new Date(),
  })
  const { paths } = first
  const [cert, key, ca] = await Promise.all([
    readFile(paths.cert, 'utf8'),
    readFile(paths.key, 'utf8'),
    readFile(paths.caCert, 'utf8'),
  ])
  const oldSerial = new X509Certificate(cert).serialNumber

  const app = fastify({ https: { cert, key } })
  app.get('/', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as AddressInfo).port

  const events = collector()
  const watcher = watchTls({
    certPath: paths.cert,
    keyPath: paths.key,
    caPath: paths.caCert,
    current: { cert, key, ca },
    debounceMs: 50,
    onChange: (ctx) => {
      app.server.setSecureContext({ cert: ctx.cert, key: ctx.key })
      events.onChange(ctx)
    },
    onError: events.onError,
  })
  t.teardown(() => watcher.close())

  const agent: HttpsAgent = new Agent({ keepAlive: true, maxSockets: 1, ca })
  t.teardown(() => agent.destroy())
  const before = await get(port, agent)
  t.match(before, { status: 200, serial: oldSerial, reusedSocket: false })
  t.equal(await handshakeSerial(port, ca), oldSerial)

  const changed = events.next()
  const second = await localCertificates(dir)
  t.match(second, { ca: 'kept', serving: 'created' }, 'a new leaf from the same CA')
  const loaded = await within(5000, 'onChange', changed)
  const newSerial = new X509Certificate(await readFile(paths.cert)).serialNumber
  t.not(newSerial, oldSerial)
  t.equal(new X509Certificate(loaded.cert).serialNumber, newSerial)

  t.equal(
    await handshakeSerial(port, ca),
    newSerial,
    'a new connection gets the new certificate, verified against ca.crt',
  )
  const kept = await get(port, agent)
  // Node does not expose the peer certificate again on a reused socket; the same socket
  // object and port are the proof that this is the connection made under the old certificate.
  t.match(kept, { status: 200, reusedSocket: true, localPort: before.localPort }, 'the open connection keeps working')
  t.equal(kept.socket, before.socket, 'same TLS connection')
  t.notOk(kept.socket.destroyed)
  const fresh = await get(port, new Agent({ ca }))
  t.match(fresh, { status: 200, serial: newSerial })
  t.same(events.errors, [])
  t.equal(events.changes.length, 1)
})

async function writePairAsSecretVolume(
  dir: string,
  generation: string,
  pair: CertificatePair,
  ca: string,
): Promise<void> {
  const data = join(dir, generation)
  await mkdir(data)
  await writeFile(join(data, 'tls.crt'), pair.cert)
  await writeFile(join(data, 'tls.key'), pair.key)
  await writeFile(join(data, 'ca.crt'), ca)
  // What the kubelet's AtomicWriter does: a new ..data symlink renamed over the old one.
  await symlink(generation, join(dir, '..data_tmp'))
  await rename(join(dir, '..data_tmp'), join(dir, '..data'))
}

t.test('a Kubernetes Secret volume update (..data symlink swap) is picked up by the directory watch', async (t) => {
  const dir = await tmpDir(t)
  const now = new Date()
  const ca = generateCa({ commonName: 'ca', days: 10, now })
  const a = generateServing({ ca, service: 's', namespace: 'n', hosts: [], days: 10, now })
  const b = generateServing({ ca, service: 's', namespace: 'n', hosts: ['localhost'], days: 10, now })
  await writePairAsSecretVolume(dir, '..2025_01_01_00_00_00.1', a, ca.cert)
  for (const name of ['tls.crt', 'tls.key', 'ca.crt']) await symlink(join('..data', name), join(dir, name))

  const events = collector()
  const watcher = watchTls({
    certPath: join(dir, 'tls.crt'),
    keyPath: join(dir, 'tls.key'),
    caPath: join(dir, 'ca.crt'),
    current: { cert: a.cert, key: a.key, ca: ca.cert },
    debounceMs: 50,
    pollMs: 0,
    onChange: events.onChange,
    onError: events.onError,
  })
  t.teardown(() => watcher.close())
  await sleep(100)
  t.equal(events.changes.length, 0, 'nothing to report for what is already served')

  const changed = events.next()
  await writePairAsSecretVolume(dir, '..2025_01_02_00_00_00.2', b, ca.cert)
  const got = await within(5000, 'onChange after the symlink swap', changed)
  t.same(got, { cert: b.cert, key: b.key, ca: ca.cert })
  t.same(events.errors, [])
})

t.test('a key that does not match is refused until a good pair arrives', async (t) => {
  const { a, b, certPath, keyPath } = await twoPairs(t)
  await writeFile(certPath, a.cert)
  await writeFile(keyPath, a.key)
  const events = collector()
  const watcher = watchTls({
    certPath,
    keyPath,
    debounceMs: 50,
    pollMs: 0,
    onChange: events.onChange,
    onError: events.onError,
  })
  t.teardown(() => watcher.close())
  await sleep(100)

  const failed = events.nextError()
  await writeFile(certPath, b.cert)
  const err = await within(5000, 'onError', failed)
  t.match(err.message, /key does not belong to the certificate/)
  t.equal(events.changes.length, 0, 'the old pair stays')

  const changed = events.next()
  await writeFile(keyPath, b.key)
  t.same(await within(5000, 'onChange', changed), { cert: b.cert, key: b.key })
  t.equal(events.errors.length, 1)
})

t.test('the poll finds a change without file events', async (t) => {
  const { a, b, certPath, keyPath } = await twoPairs(t)
  await writeFile(certPath, a.cert)
  await writeFile(keyPath, a.key)
  const events = collector()
  const watcher = watchTls({
    certPath,
    keyPath,
    current: a,
    fsWatch: false,
    pollMs: 100,
    onChange: events.onChange,
    onError: events.onError,
  })
  t.teardown(() => watcher.close())
  const changed = events.next()
  await writeFile(keyPath, b.key)
  await writeFile(certPath, b.cert)
  t.same(await within(5000, 'poll', changed), { cert: b.cert, key: b.key })
})

t.test('pairProblem names what is wrong', async (t) => {
  const now = new Date()
  const ca = generateCa({ commonName: 'ca', days: 10, now })
  const other = generateCa({ commonName: 'other', days: 10, now })
  const leaf = generateServing({ ca, service: 's', namespace: 'n', hosts: [], days: 10, now })
  t.equal(pairProblem({ cert: leaf.cert, key: leaf.key, ca: ca.cert }), null)
  t.equal(pairProblem({ cert: leaf.cert, key: other.key }), 'the key does not belong to the certificate')
  t.equal(pairProblem({ cert: leaf.cert, key: leaf.key, ca: other.cert }), 'the certificate is not signed by the CA')
  t.match(pairProblem({ cert: 'garbage', key: leaf.key }), /certificate cannot be parsed/)
  t.match(pairProblem({ cert: leaf.cert, key: 'garbage' }), /key cannot be parsed/)
})

t.test('a missing file is reported once, and its return is picked up', async (t) => {
  const dir = await tmpDir(t)
  const now = new Date()
  const ca = generateCa({ commonName: 'ca', days: 10, now })
  const a = generateServing({ ca, service: 's', namespace: 'n', hosts: [], days: 10, now })
  const certPath = join(dir, 'tls.crt')
  const keyPath = join(dir, 'tls.key')
  await writeFile(certPath, a.cert)
  const events = collector()
  const failed = events.nextError()
  const watcher = watchTls({
    certPath,
    keyPath,
    current: a,
    fsWatch: false,
    pollMs: 50,
    onChange: events.onChange,
    onError: events.onError,
  })
  t.teardown(() => watcher.close())
  t.match((await within(5000, 'onError', failed)).message, /ENOENT.*tls\.key/)
  await sleep(300)
  t.equal(events.errors.length, 1, 'not repeated on every poll')
  const changed = events.next()
  await writeFile(keyPath, a.key)
  t.same(await within(5000, 'onChange', changed), { cert: a.cert, key: a.key })
})
