import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { Test } from 'tap'
import { ensureCertificates } from '../../src/certs/files.js'
import { webhookConfig } from '../../src/config/webhook.js'
import { startWebhook, type RunningWebhook } from '../../src/server/server.js'

export interface TestWebhook {
  running: RunningWebhook
  /** https://127.0.0.1:PORT */
  url: string
  /** The CA that signed the serving certificate (when the helper made it). */
  ca: string
  /** Every log line the webhook wrote, raw. */
  lines: string[]
}

export interface TestWebhookOptions {
  logLevel?: string
  /** Serve these files instead of a fresh certificate for 127.0.0.1 and localhost. */
  tls?: { cert: string; key: string }
  /** The example inventory unless given; null for none (pass --kubeconfig in args). */
  inventoryFile?: string | null
  args?: string[]
}

/** The real webhook (startWebhook) on a free loopback port, shut down and cleaned up by t. */
export async function startTestWebhook(t: Test, options: TestWebhookOptions = {}): Promise<TestWebhook> {
  let tls = options.tls
  let ca = ''
  if (tls === undefined) {
    const dir = await mkdtemp(join(tmpdir(), 'neverpull-webhook-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const made = await ensureCertificates({
      outDir: dir,
      service: 'neverpull-guard',
      namespace: 'neverpull-system',
      hosts: ['127.0.0.1', 'localhost'],
      days: 30,
      force: false,
      now: new Date(),
    })
    tls = { cert: made.paths.cert, key: made.paths.key }
    ca = await readFile(made.paths.caCert, 'utf8')
  }
  const inventory = options.inventoryFile === undefined ? 'examples/inventory.yaml' : options.inventoryFile
  const parsed = webhookConfig(
    [
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--metrics-port',
      '0',
      '--tls-cert',
      tls.cert,
      '--tls-key',
      tls.key,
      '--shutdown-delay',
      '0s',
      '--log-level',
      options.logLevel ?? 'info',
      ...(inventory === null ? [] : ['--inventory-file', inventory]),
      ...(options.args ?? []),
    ],
    {},
  )
  if (!parsed.ok) throw new Error(parsed.error)
  const lines: string[] = []
  const logStream = new Writable({
    write(chunk, _, cb) {
      lines.push(String(chunk))
      cb()
    },
  })
  const running = await startWebhook(parsed.config, { logStream })
  t.teardown(() => running.shutdown())
  return { running, url: running.url.replace('localhost', '127.0.0.1'), ca, lines }
}
