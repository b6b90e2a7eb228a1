import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureCertificates, type EnsureOptions, type EnsureResult } from '../../src/certs/files.js'
import { webhookConfig } from '../../src/config/webhook.js'
import { startWebhook, type RunningWebhook } from '../../src/server/server.js'
import { localWebhookArgs, type LocalWebhookFlags } from './webhook-args.js'

// The real webhook (startWebhook) on a free loopback port, for tests (through
// startTestWebhook in webhook.ts) and the soak; without tap, so the soak can use it.

export interface LocalWebhookOptions extends Omit<LocalWebhookFlags, 'tls'> {
  /** Serve these files instead of a fresh certificate for 127.0.0.1 and localhost. */
  tls?: LocalWebhookFlags['tls']
  /** Where the webhook's log lines go. */
  logStream: NodeJS.WritableStream
}

export interface LocalWebhook {
  running: RunningWebhook
  /** https://127.0.0.1:PORT */
  url: string
  /** The CA that signed the serving certificate, and its file (both '' when tls was given). */
  ca: string
  caFile: string
  /** Shuts the webhook down and removes the certificates it was given. */
  close(): Promise<void>
}

/** A CA and a serving certificate for 127.0.0.1 and localhost in dir (ensureCertificates: kept while good). */
export function localCertificates(
  dir: string,
  options: Partial<Omit<EnsureOptions, 'outDir'>> = {},
): Promise<EnsureResult> {
  return ensureCertificates({
    outDir: dir,
    service: 'neverpull-guard',
    namespace: 'neverpull-system',
    hosts: ['127.0.0.1', 'localhost'],
    days: 30,
    force: false,
    now: new Date(),
    ...options,
  })
}

export async function startLocalWebhook(options: LocalWebhookOptions): Promise<LocalWebhook> {
  let tls = options.tls
  let ca = ''
  let caFile = ''
  let dir: string | undefined
  const cleanup = async (): Promise<void> => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  }
  try {
    if (tls === undefined) {
      dir = await mkdtemp(join(tmpdir(), 'neverpull-webhook-'))
      const made = await localCertificates(dir)
      tls = { cert: made.paths.cert, key: made.paths.key }
      caFile = made.paths.caCert
      ca = await readFile(caFile, 'utf8')
    }
    const parsed = webhookConfig(localWebhookArgs({ ...options, tls }), {})
    if (!parsed.ok) throw new Error(parsed.error)
    const running = await startWebhook(parsed.config, { logStream: options.logStream })
    return {
      running,
      url: running.url.replace('localhost', '127.0.0.1'),
      ca,
      caFile,
      close: async () => {
        await running.shutdown()
        await cleanup()
      },
    }
  } catch (err) {
    await cleanup()
    throw err
  }
}
