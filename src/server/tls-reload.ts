import { X509Certificate, createHash, createPrivateKey } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'

export interface TlsFiles {
  cert: string
  key: string
  /** Present when `caPath` is watched; the certificate was checked to be signed by it. */
  ca?: string
}

export interface WatchTlsOptions {
  certPath: string
  keyPath: string
  /** When given, a certificate not signed by this CA is refused like a mismatched key. */
  caPath?: string
  onChange(ctx: TlsFiles): void
  onError(err: Error): void
  /** Quiet time after the last file event before re-reading; default 250 ms. */
  debounceMs?: number
  /** Content check independent of file events; default 30 s, 0 turns it off. */
  pollMs?: number
  /** Directory watches; default true. Off for file systems without change events (some NFS, FUSE). */
  fsWatch?: boolean
  /**
   * What the server is serving now. Without it, the content on disk when watching starts
   * counts as current, and a change between the server's own read and this call is missed.
   */
  current?: TlsFiles
}

export interface TlsWatcher {
  close(): void
}

const DEFAULT_DEBOUNCE_MS = 250
const DEFAULT_POLL_MS = 30_000

/**
 * Calls onChange with the new certificate and key whenever their content changes on disk
 * and they belong together; a pair that does not (mid-rotation, or a bad Secret) goes to
 * onError and the caller keeps serving the old one.
 *
 * The directories are watched, not the files: a Kubernetes Secret volume updates by
 * pointing the `..data` symlink at a new directory, and a watch on the old file's inode
 * would never fire again. The poll catches what events miss (and file systems without any).
 */
export function watchTls(options: WatchTlsOptions): TlsWatcher {
  const debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS
  const paths = [options.certPath, options.keyPath, ...(options.caPath === undefined ? [] : [options.caPath])]
  const watchers: FSWatcher[] = []
  let closed = false
  let timer: NodeJS.Timeout | undefined
  let running = false
  let again = false
  // Hash of the last content looked at, good or bad: the same bad pair is reported once,
  // not on every poll.
  let lastSeen: string | undefined = options.current === undefined ? undefined : hashOf(options.current)
  let lastReadError: string | undefined

  const schedule = (): void => {
    if (closed) return
    if (timer !== undefined) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = undefined
      void check()
    }, debounceMs)
    timer.unref()
  }

  const check = async (): Promise<void> => {
    if (running) {
      again = true
      return
    }
    running = true
    try {
      do {
        again = false
        await checkOnce()
      } while (again && !closed)
    } finally {
      running = false
    }
  }

  const checkOnce = async (): Promise<void> => {
    let files: TlsFiles
    try {
      files = await readTlsFiles(options)
    } catch (err) {
      // Missing for a moment (a file replaced by hand); try again on the next event or poll,
      // reporting each distinct failure once.
      lastSeen = undefined
      const error = asError(err)
      if (!closed && error.message !== lastReadError) options.onError(error)
      lastReadError = error.message
      return
    }
    lastReadError = undefined
    const hash = hashOf(files)
    if (hash === lastSeen || closed) return
    lastSeen = hash
    const problem = pairProblem(files)
    if (problem !== null) {
      options.onError(new Error(`not reloading TLS from ${options.certPath} and ${options.keyPath}: ${problem}`))
      return
    }
    try {
      options.onChange(files)
    } catch (err) {
      options.onError(asError(err))
    }
  }

  if (options.fsWatch ?? true) {
    for (const dir of new Set(paths.map((p) => dirname(resolve(p))))) {
      try {
        const w = watch(dir, { persistent: false }, schedule)
        w.on('error', (err) => options.onError(asError(err)))
        watchers.push(w)
      } catch (err) {
        options.onError(asError(err))
      }
    }
  }
  const poll = pollMs > 0 ? setInterval(() => void check(), pollMs) : undefined
  poll?.unref()

  if (options.current === undefined) {
    void readTlsFiles(options).then(
      (files) => {
        lastSeen ??= hashOf(files)
      },
      () => undefined,
    )
  } else {
    // The files may already differ from what the server loaded.
    schedule()
  }

  return {
    close(): void {
      closed = true
      if (timer !== undefined) clearTimeout(timer)
      if (poll !== undefined) clearInterval(poll)
      for (const w of watchers) w.close()
    },
  }
}

/** notAfter of the first certificate in `pem` (ms since the epoch), undefined when it cannot be parsed. */
export function certificateNotAfter(pem: string): number | undefined {
  try {
    const at = Date.parse(new X509Certificate(pem).validTo)
    return Number.isNaN(at) ? undefined : at
  } catch {
    return undefined
  }
}

/** Why this certificate and key cannot be served together, or null. */
export function pairProblem(files: TlsFiles): string | null {
  let cert: X509Certificate
  try {
    cert = new X509Certificate(files.cert)
  } catch (err) {
    return `the certificate cannot be parsed (${asError(err).message})`
  }
  try {
    if (!cert.checkPrivateKey(createPrivateKey(files.key))) return 'the key does not belong to the certificate'
  } catch (err) {
    return `the key cannot be parsed (${asError(err).message})`
  }
  if (files.ca !== undefined) {
    try {
      const ca = new X509Certificate(files.ca)
      if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return 'the certificate is not signed by the CA'
    } catch (err) {
      return `the CA cannot be parsed (${asError(err).message})`
    }
  }
  return null
}

async function readTlsFiles(options: WatchTlsOptions): Promise<TlsFiles> {
  const [cert, key, ca] = await Promise.all([
    readFile(options.certPath, 'utf8'),
    readFile(options.keyPath, 'utf8'),
    options.caPath === undefined ? undefined : readFile(options.caPath, 'utf8'),
  ])
  return ca === undefined ? { cert, key } : { cert, key, ca }
}

function hashOf(files: TlsFiles): string {
  return createHash('sha256')
    .update(files.cert)
    .update('\0')
    .update(files.key)
    .update('\0')
    .update(files.ca ?? '')
    .digest('hex')
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}
