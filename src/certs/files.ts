import { randomBytes } from 'node:crypto'
import { chmod, mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { checkCa, checkServing, renewBeforeMs } from './check.js'
import { generateCa, generateServing, type CertificatePair } from './generate.js'

export const DEV_SERVICE = 'neverpull-guard'
export const DEV_NAMESPACE = 'neverpull-system'
export const DEV_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '::1']
export const DEFAULT_DAYS = 365

export type Outcome = 'kept' | 'created'

export interface CertificatePaths {
  caCert: string
  caKey: string
  cert: string
  key: string
}

export interface EnsureOptions {
  outDir: string
  service: string
  namespace: string
  hosts: readonly string[]
  days: number
  force: boolean
  now: Date
}

export interface EnsureResult {
  ca: Outcome
  serving: Outcome
  paths: CertificatePaths
  /** Why a certificate was created, for the person at the terminal; absent when kept. */
  reasons: { ca?: string; serving?: string }
}

export function certificatePaths(outDir: string): CertificatePaths {
  return {
    caCert: join(outDir, 'ca.crt'),
    caKey: join(outDir, 'ca.key'),
    cert: join(outDir, 'tls.crt'),
    key: join(outDir, 'tls.key'),
  }
}

export async function ensureCertificates(options: EnsureOptions): Promise<EnsureResult> {
  const paths = certificatePaths(options.outDir)
  await mkdir(options.outDir, { recursive: true })
  const [caCert, caKey, cert, key] = await Promise.all([
    readIfExists(paths.caCert),
    readIfExists(paths.caKey),
    readIfExists(paths.cert),
    readIfExists(paths.key),
  ])
  const renewBefore = renewBeforeMs(options.days)
  const reasons: EnsureResult['reasons'] = {}

  let ca: CertificatePair
  let caOutcome: Outcome = 'kept'
  const caProblem = options.force
    ? 'forced'
    : checkCa({ cert: caCert, key: caKey, now: options.now, renewBeforeMs: renewBefore })
  if (caProblem !== null || caCert === undefined || caKey === undefined) {
    ca = generateCa({ commonName: `${options.service}-ca`, days: options.days, now: options.now })
    caOutcome = 'created'
    reasons.ca = caProblem ?? 'missing'
  } else {
    ca = { cert: caCert, key: caKey }
  }

  let servingOutcome: Outcome = 'kept'
  let serving: CertificatePair | undefined
  const servingProblem =
    caOutcome === 'created'
      ? 'the CA is new'
      : checkServing({
          cert,
          key,
          ca: ca.cert,
          service: options.service,
          namespace: options.namespace,
          hosts: options.hosts,
          now: options.now,
          renewBeforeMs: renewBefore,
        })
  if (servingProblem !== null) {
    serving = generateServing({
      ca,
      service: options.service,
      namespace: options.namespace,
      hosts: options.hosts,
      days: options.days,
      now: options.now,
    })
    servingOutcome = 'created'
    reasons.serving = servingProblem
  }

  if (caOutcome === 'created') {
    await writeFileAtomic(paths.caKey, ca.key, 0o600)
    await writeFileAtomic(paths.caCert, ca.cert, 0o644)
  } else {
    await chmod(paths.caKey, 0o600)
  }
  if (serving !== undefined) {
    await writeFileAtomic(paths.key, serving.key, 0o600)
    await writeFileAtomic(paths.cert, serving.cert, 0o644)
  } else {
    await chmod(paths.key, 0o600)
  }

  return { ca: caOutcome, serving: servingOutcome, paths, reasons }
}

/** The certificates `npm start` serves with: reachable as localhost, 127.0.0.1 and ::1. */
export function ensureDevCertificates(dir: string, now: Date = new Date()): Promise<EnsureResult> {
  return ensureCertificates({
    outDir: dir,
    service: DEV_SERVICE,
    namespace: DEV_NAMESPACE,
    hosts: DEV_HOSTS,
    days: DEFAULT_DAYS,
    force: false,
    now,
  })
}

/**
 * Writes to a temporary file beside `path` and renames it over, so a reader (or the TLS
 * reload watcher) sees the old file or the new one, never half of one.
 */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    const handle = await open(tmp, 'wx', mode)
    try {
      await handle.writeFile(data)
      // open()'s mode is filtered by the umask; the key files must end up 0600 exactly.
      await handle.chmod(mode)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => undefined)
    throw err
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}
