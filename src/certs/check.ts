import { X509Certificate, createPrivateKey } from 'node:crypto'
import { isIP } from 'node:net'
import { forge, type Forge } from './forge.js'
import { DAY_MS, subjectAltNames } from './generate.js'
import { errorMessage } from '../util/guards.js'

// Decides whether certificates already on disk can stay. Each check returns the reason a
// certificate has to be replaced (shown to the person running `certs`), or null to keep it.

// Renew a month ahead so a missed run (or a CronJob that failed over a holiday) does not
// turn into rejected admission requests.
const RENEW_BEFORE_DAYS = 30

/** 30 days, but at most a third of the lifetime, so a `--days 7` certificate is not renewed on every run. */
export function renewBeforeMs(days: number): number {
  return Math.min(RENEW_BEFORE_DAYS, days / 3) * DAY_MS
}

export interface CaCheck {
  cert: string | undefined
  key: string | undefined
  now: Date
  renewBeforeMs: number
}

export interface ServingCheck extends CaCheck {
  ca: string
  service: string
  namespace: string
  hosts: readonly string[]
}

export function checkCa(input: CaCheck): string | null {
  if (input.cert === undefined) return 'no certificate'
  if (input.key === undefined) return 'no key'
  const parsed = parsePair(input.cert, input.key)
  if (typeof parsed === 'string') return parsed
  if (!parsed.x509.ca) return 'certificate is not a CA (basicConstraints cA is not set)'
  return expiryProblem(parsed.forge, input.now, input.renewBeforeMs)
}

export function checkServing(input: ServingCheck): string | null {
  if (input.cert === undefined) return 'no certificate'
  if (input.key === undefined) return 'no key'
  const parsed = parsePair(input.cert, input.key)
  if (typeof parsed === 'string') return parsed
  const ca = new X509Certificate(input.ca)
  if (!parsed.x509.checkIssued(ca) || !parsed.x509.verify(ca.publicKey)) {
    return 'certificate is not signed by the current CA'
  }
  const expiry = expiryProblem(parsed.forge, input.now, input.renewBeforeMs)
  if (expiry !== null) return expiry
  return sanProblem(parsed.forge, input.service, input.namespace, input.hosts)
}

interface ParsedPair {
  x509: X509Certificate
  forge: Forge.pki.Certificate
}

function parsePair(certPem: string, keyPem: string): ParsedPair | string {
  let x509: X509Certificate
  let parsed: Forge.pki.Certificate
  try {
    x509 = new X509Certificate(certPem)
    parsed = forge.pki.certificateFromPem(certPem)
  } catch (err) {
    return `certificate cannot be parsed (${errorMessage(err)})`
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(keyPem))) return 'key does not belong to the certificate'
  } catch (err) {
    return `key cannot be parsed (${errorMessage(err)})`
  }
  return { x509, forge: parsed }
}

function expiryProblem(cert: Forge.pki.Certificate, now: Date, renewBefore: number): string | null {
  const { notBefore, notAfter } = cert.validity
  if (notBefore.getTime() > now.getTime()) return `certificate is not valid before ${notBefore.toISOString()}`
  if (notAfter.getTime() <= now.getTime()) return `certificate expired on ${notAfter.toISOString()}`
  if (notAfter.getTime() - now.getTime() <= renewBefore) return `certificate expires on ${notAfter.toISOString()}`
  return null
}

// Exact match rather than "covers": a host dropped from --host (a stale node IP, say) must
// leave the certificate too.
function sanProblem(
  cert: Forge.pki.Certificate,
  service: string,
  namespace: string,
  hosts: readonly string[],
): string | null {
  const want = subjectAltNames(service, namespace, hosts)
  const wantKeys = new Set([...want.dns.map((d) => `DNS:${d}`), ...want.ips.map((ip) => `IP:${canonicalIp(ip)}`)])
  const ext: { altNames?: Array<{ type: number; value: string; ip?: string }> } | undefined =
    cert.getExtension('subjectAltName')
  const haveKeys = new Set<string>()
  for (const name of ext?.altNames ?? []) {
    if (name.type === 2) haveKeys.add(`DNS:${name.value.toLowerCase()}`)
    else if (name.type === 7 && name.ip !== undefined) haveKeys.add(`IP:${canonicalIp(name.ip)}`)
  }
  const missing = [...wantKeys].filter((k) => !haveKeys.has(k))
  const extra = [...haveKeys].filter((k) => !wantKeys.has(k))
  if (missing.length === 0 && extra.length === 0) return null
  const parts: string[] = []
  if (missing.length > 0) parts.push(`lacks ${missing.join(', ')}`)
  if (extra.length > 0) parts.push(`has unrequested ${extra.join(', ')}`)
  return `names changed: certificate ${parts.join('; ')}`
}

// `::1`, `0:0:0:0:0:0:0:1` and `0::1` are one address; the URL parser writes each the same way.
function canonicalIp(ip: string): string {
  return isIP(ip) === 6 ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip
}
