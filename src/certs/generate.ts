import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import { forge, type Forge } from './forge.js'

// Certificates for the webhook's HTTPS listener: a private CA whose bundle goes into the
// ValidatingWebhookConfiguration, and a serving certificate for the Service DNS names the
// API server dials. Pure apart from key and serial randomness; the clock is passed in.

export interface CertificatePair {
  /** PEM certificate. */
  cert: string
  /** PEM private key (PKCS#8). */
  key: string
}

export interface CaOptions {
  commonName: string
  days: number
  now: Date
}

export interface ServingOptions {
  ca: CertificatePair
  service: string
  namespace: string
  hosts: readonly string[]
  days: number
  now: Date
}

export interface SubjectAltNames {
  dns: string[]
  ips: string[]
}

export const DAY_MS = 86_400_000

// Nodes and the API server are not always in step with the machine that issued the
// certificate; a certificate that becomes valid "in a minute" fails every handshake until then.
const BACKDATE_MS = 60 * 60 * 1000

const RSA_BITS = 2048

export function servingCommonName(service: string, namespace: string): string {
  return `${service}.${namespace}.svc`
}

/** The names the API server (and people with port-forward) use to reach the webhook. */
export function subjectAltNames(service: string, namespace: string, hosts: readonly string[]): SubjectAltNames {
  const dns = [
    service,
    `${service}.${namespace}`,
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.cluster.local`,
  ]
  const ips: string[] = []
  for (const raw of hosts) {
    const host = normalizeHost(raw)
    if (isIP(host) !== 0) {
      if (!ips.includes(host)) ips.push(host)
    } else if (!dns.includes(host)) {
      dns.push(host)
    }
  }
  return { dns, ips }
}

/** Lower-cases names and strips the brackets of `[::1]`; IPs stay as written. */
export function normalizeHost(host: string): string {
  const unbracketed = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  return isIP(unbracketed) !== 0 ? unbracketed : unbracketed.toLowerCase()
}

export function generateCa(options: CaOptions): CertificatePair {
  const { forgeKey, pem } = newRsaKey()
  const cert = forge.pki.createCertificate()
  cert.publicKey = forgeKey.publicKey
  cert.serialNumber = randomSerial()
  setValidity(cert, options.now, options.days, undefined)
  const subject = [{ name: 'commonName', value: options.commonName }]
  cert.setSubject(subject)
  cert.setIssuer(subject)
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    // Self-signed: forge's `true` means "my own key id", which is right only here.
    { name: 'authorityKeyIdentifier', keyIdentifier: true },
  ])
  cert.sign(forgeKey.privateKey, forge.md.sha256.create())
  return { cert: forge.pki.certificateToPem(cert), key: pem }
}

export function generateServing(options: ServingOptions): CertificatePair {
  const caCert = forge.pki.certificateFromPem(options.ca.cert)
  const caKey = forge.pki.privateKeyFromPem(options.ca.key)
  const { forgeKey, pem } = newRsaKey()
  const sans = subjectAltNames(options.service, options.namespace, options.hosts)

  const cert = forge.pki.createCertificate()
  cert.publicKey = forgeKey.publicKey
  cert.serialNumber = randomSerial()
  setValidity(cert, options.now, options.days, caCert.validity.notAfter)
  cert.setSubject([{ name: 'commonName', value: servingCommonName(options.service, options.namespace) }])
  cert.setIssuer(caCert.subject.attributes)
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [...sans.dns.map((value) => ({ type: 2, value })), ...sans.ips.map((ip) => ({ type: 7, ip }))],
    },
    { name: 'subjectKeyIdentifier' },
    // forge's `keyIdentifier: true` would put the leaf's own key id here; it must be the CA's.
    { name: 'authorityKeyIdentifier', keyIdentifier: keyIdentifierOf(caCert) },
  ])
  cert.sign(caKey, forge.md.sha256.create())
  return { cert: forge.pki.certificateToPem(cert), key: pem }
}

function keyIdentifierOf(cert: Forge.pki.Certificate): string {
  const ext: { subjectKeyIdentifier?: string } | undefined = cert.getExtension('subjectKeyIdentifier')
  if (ext?.subjectKeyIdentifier !== undefined) return forge.util.hexToBytes(ext.subjectKeyIdentifier)
  return cert.generateSubjectKeyIdentifier().getBytes()
}

// Node's OpenSSL generates a 2048-bit key in ~0.2-0.6 s on two cores; forge's JavaScript
// prime search takes 0.7-2.4 s. Forge still builds and signs the certificate.
function newRsaKey(): { forgeKey: Forge.pki.rsa.KeyPair; pem: string } {
  const pair = generateKeyPairSync('rsa', {
    modulusLength: RSA_BITS,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  })
  const privateKey = forge.pki.privateKeyFromPem(pair.privateKey)
  const publicKey = forge.pki.publicKeyFromPem(pair.publicKey)
  return { forgeKey: { privateKey, publicKey }, pem: pair.privateKey }
}

// 128 random bits with the top bit cleared: DER INTEGERs are signed, and RFC 5280 wants
// serials positive and non-zero.
function randomSerial(): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0]! & 0x7f) | 0x01
  return bytes.toString('hex')
}

function setValidity(cert: Forge.pki.Certificate, now: Date, days: number, notAfterLimit: Date | undefined): void {
  cert.validity.notBefore = new Date(now.getTime() - BACKDATE_MS)
  const notAfter = new Date(now.getTime() + days * DAY_MS)
  // A leaf outliving its CA would only look valid; clients reject it once the CA expires.
  cert.validity.notAfter = notAfterLimit !== undefined && notAfterLimit < notAfter ? new Date(notAfterLimit) : notAfter
}
