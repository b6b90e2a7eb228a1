import { X509Certificate, createPrivateKey } from 'node:crypto'
import t from 'tap'
import { forge, type Forge } from '../../src/certs/forge.js'
import { generateCa, generateServing, subjectAltNames } from '../../src/certs/generate.js'
import { DAY_MS } from './helpers.js'

const now = new Date('2025-03-01T12:00:00Z')
const ca = generateCa({ commonName: 'neverpull-guard-ca', days: 365, now })
const leaf = generateServing({
  ca,
  service: 'neverpull-guard',
  namespace: 'neverpull-system',
  hosts: ['localhost', '127.0.0.1', '::1', 'Webhook.Example.COM'],
  days: 90,
  now,
})
const caX = new X509Certificate(ca.cert)
const leafX = new X509Certificate(leaf.cert)

t.test('the CA is a self-signed CA that may only sign leaves', async (t) => {
  t.ok(caX.ca, 'basicConstraints cA')
  t.ok(caX.checkIssued(caX), 'self-issued')
  t.ok(caX.verify(caX.publicKey), 'self-signed')
  t.ok(caX.checkPrivateKey(createPrivateKey(ca.key)))
  t.match(caX.subject, /CN=neverpull-guard-ca/)
  const f = forge.pki.certificateFromPem(ca.cert)
  t.match(f.getExtension('basicConstraints'), { cA: true, pathLenConstraint: 0, critical: true })
  t.match(f.getExtension('keyUsage'), { keyCertSign: true, cRLSign: true, critical: true })
  t.ok(f.getExtension('subjectKeyIdentifier'))
  t.equal(f.validity.notAfter.getTime(), now.getTime() + 365 * DAY_MS)
  t.ok(f.validity.notBefore.getTime() < now.getTime(), 'backdated for clock skew')
  t.equal((f.publicKey as Forge.pki.rsa.PublicKey).n.bitLength(), 2048)
})

t.test('the serving certificate chains to the CA', async (t) => {
  t.notOk(leafX.ca, 'not a CA')
  t.ok(leafX.checkIssued(caX), 'issuer is the CA subject')
  t.ok(leafX.verify(caX.publicKey), 'signed by the CA key')
  t.notOk(leafX.verify(leafX.publicKey), 'not self-signed')
  t.ok(leafX.checkPrivateKey(createPrivateKey(leaf.key)))
  t.match(leafX.subject, /CN=neverpull-guard\.neverpull-system\.svc/)
  t.equal(leafX.issuer, caX.subject)
  t.match(leaf.key, /^-----BEGIN PRIVATE KEY-----/)
})

t.test('the serving certificate carries the Service names and every host', async (t) => {
  for (const name of [
    'neverpull-guard',
    'neverpull-guard.neverpull-system',
    'neverpull-guard.neverpull-system.svc',
    'neverpull-guard.neverpull-system.svc.cluster.local',
    'localhost',
    'webhook.example.com',
  ]) {
    t.equal(leafX.checkHost(name, { subject: 'never' }), name, name)
  }
  t.equal(leafX.checkIP('127.0.0.1'), '127.0.0.1')
  t.equal(leafX.checkIP('::1'), '::1')
  t.equal(leafX.checkHost('other.example.com', { subject: 'never' }), undefined)
  t.equal(leafX.checkIP('10.0.0.1'), undefined)
  t.notMatch(leafX.subjectAltName, /DNS:127\.0\.0\.1|DNS:::1/, 'IPs are IP SANs, not DNS SANs')
})

t.test('the serving certificate has server extensions', async (t) => {
  const f = forge.pki.certificateFromPem(leaf.cert)
  t.match(f.getExtension('basicConstraints'), { cA: false, critical: true })
  const ku = f.getExtension('keyUsage') as Record<string, unknown>
  t.match(ku, { digitalSignature: true, keyEncipherment: true, critical: true })
  t.notOk(ku.keyCertSign)
  t.same(leafX.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'extKeyUsage serverAuth only')
  const caSki = (
    forge.pki.certificateFromPem(ca.cert).getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier: string }
  ).subjectKeyIdentifier
  const ski = (f.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier: string }).subjectKeyIdentifier
  const aki = f.getExtension('authorityKeyIdentifier') as { value: string }
  t.not(ski, caSki)
  // AuthorityKeyIdentifier ::= SEQUENCE { [0] keyIdentifier }: the CA's key id, not our own.
  const akiHex = forge.util.bytesToHex(aki.value)
  t.ok(akiHex.endsWith(caSki), `AKI ${akiHex} ends with CA SKI ${caSki}`)
  t.equal(f.validity.notAfter.getTime(), now.getTime() + 90 * DAY_MS)
})

t.test('serial numbers are random and positive', async (t) => {
  const serials = new Set([caX.serialNumber, leafX.serialNumber])
  const again = generateServing({ ca, service: 's', namespace: 'n', hosts: [], days: 1, now })
  serials.add(new X509Certificate(again.cert).serialNumber)
  t.equal(serials.size, 3)
  for (const serial of serials) {
    t.ok(serial.length >= 30, `${serial} has ~128 bits`)
    t.ok(parseInt(serial.slice(0, 2), 16) < 0x80, `${serial} is positive`)
    t.not(BigInt(`0x${serial}`), 0n)
  }
})

t.test('a leaf never outlives its CA', async (t) => {
  const long = generateServing({ ca, service: 's', namespace: 'n', hosts: [], days: 3650, now })
  t.equal(new X509Certificate(long.cert).validTo, caX.validTo)
})

t.test('subjectAltNames sorts hosts into DNS and IP names, without duplicates', async (t) => {
  t.same(subjectAltNames('svc', 'ns', ['10.1.2.3', '[fd00::1]', 'svc.ns.svc', 'A.example', 'a.example', '10.1.2.3']), {
    dns: ['svc', 'svc.ns', 'svc.ns.svc', 'svc.ns.svc.cluster.local', 'a.example'],
    ips: ['10.1.2.3', 'fd00::1'],
  })
})
