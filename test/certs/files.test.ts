import { X509Certificate } from 'node:crypto'
import { readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import {
  certificatePaths,
  ensureCertificates,
  ensureDevCertificates,
  type EnsureOptions,
} from '../../src/certs/files.js'
import { generateCa, generateServing } from '../../src/certs/generate.js'
import { DAY_MS, tmpDir } from './helpers.js'

const now = new Date('2025-06-01T00:00:00Z')
const later = (days: number): Date => new Date(now.getTime() + days * DAY_MS)

function options(outDir: string, over: Partial<EnsureOptions> = {}): EnsureOptions {
  return {
    outDir,
    service: 'neverpull-guard',
    namespace: 'neverpull-system',
    hosts: ['localhost'],
    days: 365,
    force: false,
    now,
    ...over,
  }
}

async function serials(outDir: string): Promise<{ ca: string; leaf: string }> {
  const p = certificatePaths(outDir)
  return {
    ca: new X509Certificate(await readFile(p.caCert)).serialNumber,
    leaf: new X509Certificate(await readFile(p.cert)).serialNumber,
  }
}

t.test('first run writes all four files, keys 0600', async (t) => {
  const dir = join(await tmpDir(t), 'nested', 'certs')
  const result = await ensureCertificates(options(dir))
  t.match(result, { ca: 'created', serving: 'created', paths: certificatePaths(dir) })
  t.same((await readdir(dir)).sort(), ['ca.crt', 'ca.key', 'tls.crt', 'tls.key'], 'no temporary files left')
  t.equal((await stat(result.paths.caKey)).mode & 0o777, 0o600)
  t.equal((await stat(result.paths.key)).mode & 0o777, 0o600)
  t.equal((await stat(result.paths.cert)).mode & 0o777, 0o644)
  const ca = new X509Certificate(await readFile(result.paths.caCert))
  const leaf = new X509Certificate(await readFile(result.paths.cert))
  t.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey))
})

t.test('a second run keeps both; --force replaces both', async (t) => {
  const dir = await tmpDir(t)
  await ensureCertificates(options(dir))
  const before = await serials(dir)
  const again = await ensureCertificates(options(dir, { now: later(100) }))
  t.match(again, { ca: 'kept', serving: 'kept' })
  t.same(again.reasons, {})
  t.same(await serials(dir), before)
  const forced = await ensureCertificates(options(dir, { force: true }))
  t.match(forced, { ca: 'created', serving: 'created' })
  const after = await serials(dir)
  t.not(after.ca, before.ca)
  t.not(after.leaf, before.leaf)
})

t.test('an expiring leaf is renewed from the kept CA', async (t) => {
  const dir = await tmpDir(t)
  await ensureCertificates(options(dir, { days: 400 }))
  const leafOnly = generateServing({
    ca: { cert: await readFile(join(dir, 'ca.crt'), 'utf8'), key: await readFile(join(dir, 'ca.key'), 'utf8') },
    service: 'neverpull-guard',
    namespace: 'neverpull-system',
    hosts: ['localhost'],
    days: 40,
    now,
  })
  await writeFile(join(dir, 'tls.crt'), leafOnly.cert)
  await writeFile(join(dir, 'tls.key'), leafOnly.key)
  const before = await serials(dir)
  t.match(
    await ensureCertificates(options(dir, { days: 400, now: later(5) })),
    { ca: 'kept', serving: 'kept' },
    '35 days left',
  )
  const renewed = await ensureCertificates(options(dir, { days: 400, now: later(15) }))
  t.match(renewed, { ca: 'kept', serving: 'created', reasons: { serving: /^certificate expires on 2025-07-11/ } })
  const after = await serials(dir)
  t.equal(after.ca, before.ca)
  t.not(after.leaf, before.leaf)
})

t.test('an expiring CA replaces the CA and the leaf', async (t) => {
  const dir = await tmpDir(t)
  await ensureCertificates(options(dir, { days: 60 }))
  const before = await serials(dir)
  const result = await ensureCertificates(options(dir, { days: 60, now: later(45) }))
  t.match(result, {
    ca: 'created',
    serving: 'created',
    reasons: { ca: /^certificate expires/, serving: 'the CA is new' },
  })
  const after = await serials(dir)
  t.not(after.ca, before.ca)
})

t.test('a hosts change re-issues the leaf, in both directions', async (t) => {
  const dir = await tmpDir(t)
  await ensureCertificates(options(dir))
  const before = await serials(dir)
  const added = await ensureCertificates(options(dir, { hosts: ['localhost', '10.0.0.7'] }))
  t.match(added, {
    ca: 'kept',
    serving: 'created',
    reasons: { serving: 'names changed: certificate lacks IP:10.0.0.7' },
  })
  const mid = await serials(dir)
  t.equal(mid.ca, before.ca)
  t.not(mid.leaf, before.leaf)
  t.equal(new X509Certificate(await readFile(join(dir, 'tls.crt'))).checkIP('10.0.0.7'), '10.0.0.7')
  t.match(
    await ensureCertificates(options(dir, { hosts: ['10.0.0.7', 'LOCALHOST'] })),
    { serving: 'kept' },
    'order and case do not matter',
  )
  const removed = await ensureCertificates(options(dir, { hosts: ['10.0.0.7'] }))
  t.match(removed, {
    serving: 'created',
    reasons: { serving: 'names changed: certificate has unrequested DNS:localhost' },
  })
  t.match(
    await ensureCertificates(options(dir, { namespace: 'other' })),
    { ca: 'kept', serving: 'created' },
    'namespace change',
  )
})

t.test('a leaf from another CA, or a key that does not match, is replaced', async (t) => {
  const dir = await tmpDir(t)
  await ensureCertificates(options(dir))
  const foreignCa = generateCa({ commonName: 'someone-else', days: 365, now })
  const foreign = generateServing({
    ca: foreignCa,
    service: 'neverpull-guard',
    namespace: 'neverpull-system',
    hosts: ['localhost'],
    days: 365,
    now,
  })
  await writeFile(join(dir, 'tls.crt'), foreign.cert)
  await writeFile(join(dir, 'tls.key'), foreign.key)
  t.match(await ensureCertificates(options(dir)), {
    ca: 'kept',
    serving: 'created',
    reasons: { serving: 'certificate is not signed by the current CA' },
  })

  await writeFile(join(dir, 'tls.key'), foreign.key)
  t.match(await ensureCertificates(options(dir)), {
    serving: 'created',
    reasons: { serving: 'key does not belong to the certificate' },
  })

  await writeFile(join(dir, 'ca.key'), foreignCa.key)
  t.match(await ensureCertificates(options(dir)), {
    ca: 'created',
    serving: 'created',
    reasons: { ca: 'key does not belong to the certificate', serving: 'the CA is new' },
  })
})

t.test('missing or garbage files are recreated; kept keys get 0600 back', async (t) => {
  const dir = await tmpDir(t)
  await ensureCertificates(options(dir))
  await writeFile(join(dir, 'tls.crt'), 'not a certificate')
  t.match(await ensureCertificates(options(dir)), {
    ca: 'kept',
    serving: 'created',
    reasons: { serving: /^certificate cannot be parsed/ },
  })
  const { chmod, unlink } = await import('node:fs/promises')
  await chmod(join(dir, 'tls.key'), 0o644)
  await chmod(join(dir, 'ca.key'), 0o640)
  t.match(await ensureCertificates(options(dir)), { ca: 'kept', serving: 'kept' })
  t.equal((await stat(join(dir, 'tls.key'))).mode & 0o777, 0o600)
  t.equal((await stat(join(dir, 'ca.key'))).mode & 0o777, 0o600)
  await unlink(join(dir, 'ca.key'))
  t.match(await ensureCertificates(options(dir)), {
    ca: 'created',
    reasons: { ca: 'no key', serving: 'the CA is new' },
  })
})

t.test('ensureDevCertificates serves localhost, 127.0.0.1 and ::1 for neverpull-guard', async (t) => {
  const dir = await tmpDir(t)
  const result = await ensureDevCertificates(dir)
  t.match(result, { ca: 'created', serving: 'created' })
  const leaf = new X509Certificate(await readFile(result.paths.cert))
  t.equal(leaf.checkHost('localhost', { subject: 'never' }), 'localhost')
  t.equal(
    leaf.checkHost('neverpull-guard.neverpull-system.svc', { subject: 'never' }),
    'neverpull-guard.neverpull-system.svc',
  )
  t.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1')
  t.equal(leaf.checkIP('::1'), '::1')
  t.match(await ensureDevCertificates(dir), { ca: 'kept', serving: 'kept' })
})
