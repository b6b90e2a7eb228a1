import { parseWebhookArgs, WEBHOOK_USAGE } from '../config/webhook.js'
import { EXIT_USAGE, UsageError } from '../util/flags.js'
import type { SignalSource } from '../util/signals.js'
import { errorMessage } from '../util/guards.js'

// `neverpull-guard webhook`: flags to config, start, serve until SIGTERM or SIGINT, drain.

export interface WebhookCommandIo {
  stdout: { write(chunk: string): unknown }
  stderr: { write(chunk: string): unknown }
  signals: SignalSource
}

const EXAMPLES = [
  'pod-allowed',
  'pod-denied-typo',
  'deployment-update-denied',
  'statefulset-warn-partial',
  'daemonset-denied',
]

/** 0 after a signal and a clean drain, 1 when it cannot start, 2 for bad flags. */
export async function runWebhook(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: WebhookCommandIo,
): Promise<number> {
  let config
  try {
    config = parseWebhookArgs(argv, env)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    io.stderr.write(`neverpull-guard webhook: ${err.message}\n\n${WEBHOOK_USAGE}`)
    return EXIT_USAGE
  }
  if (config === 'help') {
    io.stdout.write(WEBHOOK_USAGE)
    return 0
  }
  const { startWebhook } = await import('./server.js')
  let running: Awaited<ReturnType<typeof startWebhook>>
  try {
    running = await startWebhook(config)
  } catch (err) {
    io.stderr.write(`neverpull-guard webhook: ${errorMessage(err)}\n`)
    return 1
  }
  if (config.dev) {
    const s = running.summary
    io.stderr.write(
      `\nneverpull-guard is listening on ${running.url} (mode ${config.mode}), ` +
        `inventory ${config.inventoryFile}: ${s?.nodes ?? 0} nodes, ${s?.imageSets ?? 0} NodeImageSets.\n` +
        `Dev certificates are in certs/ (ca.crt signs tls.crt for localhost and 127.0.0.1).\n\nTry it:\n` +
        EXAMPLES.map(
          (name) =>
            `  curl -s --cacert certs/ca.crt -H 'Content-Type: application/json' ` +
            `--data @examples/reviews/${name}.json ${running.url}/validate`,
        ).join('\n') +
        `\n\nCtrl-C stops it.\n\n`,
    )
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      io.signals.removeListener('SIGTERM', stop)
      io.signals.removeListener('SIGINT', stop)
      void running.shutdown().then(resolve)
    }
    io.signals.once('SIGTERM', stop)
    io.signals.once('SIGINT', stop)
  })
  return 0
}
