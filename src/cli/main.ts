import { readFile } from 'node:fs/promises'
import { Command } from 'commander'
import { EXIT_USAGE } from '../util/flags.js'
import type { SignalSource } from '../util/signals.js'

// The program: `neverpull-guard COMMAND [flags]`, as a function tests call in-process.
// Each command parses its own flags (src/util/flags.ts, commander underneath); the bin
// (src/cli.ts) only hands in argv, the process's streams, env and signals, and sets the
// exit code. Commands are imported when run, so the agent never loads the webhook's code.

export interface CliIo {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  stdin: () => Promise<string>
  env: NodeJS.ProcessEnv
  signals: SignalSource
  now: () => number
}

interface Subcommand {
  name: string
  summary: string
  run: (argv: string[], io: CliIo) => Promise<number>
}

async function version(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

const tool =
  (name: 'runCheck' | 'runWhere' | 'runExplain') =>
  async (argv: string[], io: CliIo): Promise<number> => {
    const tools = await import('../inspect/command.js')
    return tools[name](argv, io)
  }

const COMMANDS: readonly Subcommand[] = [
  {
    name: 'webhook',
    summary: 'serve the validating admission webhook (npm start runs it with --dev)',
    run: async (argv, io) => (await import('../server/command.js')).runWebhook(argv, io.env, io),
  },
  {
    name: 'agent',
    summary: "publish this node's images as a NodeImageSet (runs as a DaemonSet)",
    run: async (argv, io) =>
      (await import('../agent/command.js')).runAgent(argv, io.env, {
        stdout: (text) => io.stdout.write(text),
        stderr: (text) => io.stderr.write(text),
        signals: io.signals,
      }),
  },
  {
    name: 'certs',
    summary: 'create the CA and serving certificate, the Secret, the caBundle',
    run: async (argv, io) => (await import('../certs/command.js')).runCerts(argv, io),
  },
  {
    name: 'check',
    summary: "the webhook's verdict on manifests, offline, for CI (exit 1 when denied)",
    run: tool('runCheck'),
  },
  { name: 'where', summary: 'which nodes hold an image, and which hold the same repository', run: tool('runWhere') },
  { name: 'explain', summary: 'why a pod is stuck in ErrImageNeverPull, and the fix', run: tool('runExplain') },
  {
    name: 'version',
    summary: 'print the version',
    run: async (_argv, io) => {
      io.stdout.write(`neverpull-guard ${await version()}\n`)
      return 0
    },
  },
]

/** The top-level help, generated from the command list. */
export function programUsage(): string {
  const program = new Command('neverpull-guard')
    .usage('COMMAND [flags]')
    .description(
      'Catches containers with imagePullPolicy: Never whose image is not on the nodes the pod may\n' +
        'land on, before they sit in ErrImageNeverPull.',
    )
    .helpOption(false)
    .addHelpCommand(false)
    .configureHelp({ helpWidth: 100, subcommandTerm: (c) => c.name() })
  for (const c of COMMANDS) program.command(c.name).description(c.summary)
  return `${program.helpInformation()}\nRun 'neverpull-guard COMMAND --help' for a command's flags.\n`
}

export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv
  const command = COMMANDS.find((c) => c.name === name)
  if (command !== undefined) return command.run(rest, io)
  switch (name) {
    case '--version':
      return COMMANDS.find((c) => c.name === 'version')!.run(rest, io)
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.stdout.write(programUsage())
      return name === undefined ? EXIT_USAGE : 0
    default:
      io.stderr.write(`neverpull-guard: unknown command "${name}"\n\n${programUsage()}`)
      return EXIT_USAGE
  }
}
