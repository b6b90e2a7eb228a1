#!/usr/bin/env node
import { readFile } from 'node:fs/promises'

// One binary for every role: the webhook, the node agent, certificates, and the offline
// tools. Installed also as `kubectl-neverpull`, so `kubectl neverpull check ...` works.

const USAGE = `Usage: neverpull-guard COMMAND [flags]

Catches containers with imagePullPolicy: Never whose image is not on the nodes the pod may
land on, before they sit in ErrImageNeverPull.

Commands:
  webhook   serve the validating admission webhook (npm start runs it with --dev)
  agent     publish this node's images as a NodeImageSet (runs as a DaemonSet)
  certs     create the CA and serving certificate, the Secret, the caBundle
  check     the webhook's verdict on manifests, offline, for CI (exit 1 when denied)
  where     which nodes hold an image, and which hold the same repository
  explain   why a pod is stuck in ErrImageNeverPull, and the fix
  version   print the version

Run 'neverpull-guard COMMAND --help' for a command's flags.
`

interface Io {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
}

async function version(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

async function webhook(argv: string[], io: Io): Promise<number> {
  const { webhookConfig, WEBHOOK_USAGE } = await import('./config/webhook.js')
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(WEBHOOK_USAGE)
    return 0
  }
  const parsed = webhookConfig(argv, process.env)
  if (!parsed.ok) {
    io.stderr.write(`neverpull-guard webhook: ${parsed.error}\n\n${WEBHOOK_USAGE}`)
    return 2
  }
  const config = parsed.config
  const { startWebhook } = await import('./server/server.js')
  let running
  try {
    running = await startWebhook(config)
  } catch (err) {
    io.stderr.write(`neverpull-guard webhook: ${(err as Error).message}\n`)
    return 1
  }
  if (config.dev) {
    const s = running.summary
    io.stderr.write(
      `\nneverpull-guard is listening on ${running.url} (mode ${config.mode}), ` +
        `inventory ${config.inventoryFile}: ${s?.nodes ?? 0} nodes, ${s?.imageSets ?? 0} NodeImageSets.\n` +
        `Dev certificates are in certs/ (ca.crt signs tls.crt for localhost and 127.0.0.1).\n\nTry it:\n` +
        ['pod-allowed', 'pod-denied-typo', 'deployment-update-denied', 'statefulset-warn-partial', 'daemonset-denied']
          .map(
            (name) =>
              `  curl -s --cacert certs/ca.crt -H 'Content-Type: application/json' ` +
              `--data @examples/reviews/${name}.json ${running.url}/validate`,
          )
          .join('\n') +
        `\n\nCtrl-C stops it.\n\n`,
    )
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGTERM', stop)
      process.off('SIGINT', stop)
      void running.shutdown().then(resolve)
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  })
  return 0
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

export async function main(argv: string[], io: Io = process): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'webhook':
      return webhook(rest, io)
    case 'agent': {
      const { runAgent } = await import('./agent/command.js')
      return runAgent(rest, process.env)
    }
    case 'certs': {
      const { runCerts } = await import('./certs/command.js')
      return runCerts(rest, io)
    }
    case 'check':
    case 'where':
    case 'explain': {
      const tools = await import('./tools/command.js')
      const run = { check: tools.runCheck, where: tools.runWhere, explain: tools.runExplain }[command]
      return run(rest, { ...io, stdin: readStdin, now: Date.now })
    }
    case 'version':
    case '--version':
      io.stdout.write(`neverpull-guard ${await version()}\n`)
      return 0
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.stdout.write(USAGE)
      return command === undefined ? 2 : 0
    default:
      io.stderr.write(`neverpull-guard: unknown command "${command}"\n\n${USAGE}`)
      return 2
  }
}

const code = await main(process.argv.slice(2))
process.exitCode = code
