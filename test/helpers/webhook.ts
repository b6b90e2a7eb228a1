import { Writable } from 'node:stream'
import type { Test } from 'tap'
import type { RunningWebhook } from '../../src/server/server.js'
import { startLocalWebhook, type LocalWebhookOptions } from './local-webhook.js'

export interface TestWebhook {
  running: RunningWebhook
  /** https://127.0.0.1:PORT */
  url: string
  /** The CA that signed the serving certificate (when the helper made it). */
  ca: string
  /** Every log line the webhook wrote, raw. */
  lines: string[]
}

export type TestWebhookOptions = Omit<LocalWebhookOptions, 'logStream'>

/** The real webhook (startWebhook) on a free loopback port, shut down and cleaned up by t. */
export async function startTestWebhook(t: Test, options: TestWebhookOptions = {}): Promise<TestWebhook> {
  const lines: string[] = []
  const logStream = new Writable({
    write(chunk, _, cb) {
      lines.push(String(chunk))
      cb()
    },
  })
  const webhook = await startLocalWebhook({ ...options, logStream })
  t.teardown(() => webhook.close())
  return { running: webhook.running, url: webhook.url, ca: webhook.ca, lines }
}
