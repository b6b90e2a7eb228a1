import { readFile } from 'node:fs/promises'
import { parsePullableRegistries } from '../api/registries.js'
import {
  EXIT_USAGE,
  durationValue,
  integerValue,
  parseFlags,
  usage,
  UsageError,
  type CommandSpec,
  type FlagDef,
  type ParsedFlags,
} from '../util/flags.js'
import { DEFAULT_STEER_MAX_NODES, type Mode } from '../api/types.js'
import { addManifestRuntimeClasses, checkObjects, exitCodeOf, renderText } from './check.js'
import { explainPod } from './explain.js'
import { loadKubeConfig } from '../kube/config.js'
import { getObject, namespacedPath } from '../kube/api.js'
import { kubeConfigHttp } from '../kube/http.js'
import { ApiStatusError } from '../kube/status.js'
import { errorMessage } from '../util/guards.js'
import { loadInventory } from './inventory-source.js'
import { parseManifests, readManifests } from './manifests.js'
import { renderWhere, whereIs } from './where.js'

export interface ToolIo {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  stdin: () => Promise<string>
  now: () => number
}

const INVENTORY_FLAGS: FlagDef[] = [
  {
    name: 'inventory-file',
    value: 'FILE',
    help: 'inventory snapshot: kubectl get nodes,nodeimagesets,namespaces,runtimeclasses -o yaml > FILE',
  },
  {
    name: 'kubeconfig',
    value: 'FILE',
    help: 'a live cluster (default: $KUBECONFIG or ~/.kube/config, current context)',
  },
  { name: 'stale-after', value: 'DUR', default: '15m', help: 'a live node image list older than this is unknown' },
]

export const CHECK_COMMAND: CommandSpec = {
  name: 'neverpull-guard check',
  usage: '-f PATH [-f PATH ...] [flags]',
  description:
    "Gives the webhook's verdict on manifests before they are applied: denials and warnings as\n" +
    'kubectl apply would print them. PATH is a file, a directory (recursive) or - for stdin.\n' +
    'Exit 0 when nothing is denied, 1 when something is, 2 for unusable input.',
  maxArgs: Number.MAX_SAFE_INTEGER,
  flags: [
    { name: 'filename', short: 'f', value: 'PATH', repeatable: true, help: 'manifests; plain arguments work too' },
    { name: 'namespace', short: 'n', value: 'NS', default: 'default', help: 'namespace for objects without one' },
    {
      name: 'mode',
      value: 'MODE',
      choices: ['enforce', 'warn', 'audit'],
      default: 'enforce',
      help: 'where the namespace has no neverpull.dev/mode label',
    },
    {
      name: 'pullable-registries',
      value: 'LIST',
      default: '*',
      help: "registries the nodes can pull from, as the webhook's flag: host[:port],... | * | none",
    },
    { name: 'output', short: 'o', value: 'FORMAT', choices: ['text', 'json'], default: 'text', help: 'output format' },
    {
      name: 'steer',
      help: "as the webhook's --steer: every namespace not labelled neverpull.dev/steer=false steers (without it, those labelled true)",
    },
    { name: 'steer-max-nodes', value: 'N', default: '100', help: "as the webhook's --steer-max-nodes" },
    ...INVENTORY_FLAGS,
  ],
}

export const WHERE_COMMAND: CommandSpec = {
  name: 'neverpull-guard where',
  usage: 'IMAGE [flags]',
  description:
    'Which nodes hold IMAGE (any reference form), which hold the same repository under other\n' +
    "tags, and which nodes' image lists are stale or missing.",
  maxArgs: 1,
  flags: [
    {
      name: 'output',
      short: 'o',
      value: 'FORMAT',
      choices: ['table', 'json'],
      default: 'table',
      help: 'output format',
    },
    {
      name: 'runtime-class',
      value: 'NAME',
      help: "only the nodes whose labels match this RuntimeClass's scheduling.nodeSelector",
    },
    ...INVENTORY_FLAGS,
  ],
}

export const EXPLAIN_COMMAND: CommandSpec = {
  name: 'neverpull-guard explain',
  usage: 'pod NAME [-n NS] [flags]',
  description:
    'For a pod (typically stuck in ErrImageNeverPull): its node, each imagePullPolicy: Never\n' +
    'container, whether its image is on that node now, where else it is, and the fix.',
  maxArgs: 2,
  flags: [
    { name: 'namespace', short: 'n', value: 'NS', help: "the pod's namespace (default: the context's, else default)" },
    {
      name: 'filename',
      short: 'f',
      value: 'FILE',
      help: 'read the pod from a file (kubectl get pod NAME -o yaml) instead of the cluster',
    },
    ...INVENTORY_FLAGS,
  ],
}

export const CHECK_USAGE = usage(CHECK_COMMAND)
export const WHERE_USAGE = usage(WHERE_COMMAND)
export const EXPLAIN_USAGE = usage(EXPLAIN_COMMAND)

function staleAfter(text: string | undefined): number {
  const ms = durationValue(text ?? '15m', '--stale-after')
  if (ms <= 0) throw new UsageError(`--stale-after must be longer than 0`)
  return ms
}

function inventoryOptions(flags: ParsedFlags, now: number, io: ToolIo) {
  const options: Parameters<typeof loadInventory>[0] = {
    staleAfterMs: staleAfter(flags.string('stale-after')),
    now,
    onSkipped: (message) => io.stderr.write(`${message}\n`),
  }
  const file = flags.string('inventory-file')
  const kubeconfig = flags.string('kubeconfig')
  if (file !== undefined) options.inventoryFile = file
  else if (kubeconfig !== undefined) options.kubeconfig = kubeconfig
  return options
}

async function run(usageText: string, io: ToolIo, body: () => Promise<number>): Promise<number> {
  try {
    return await body()
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`error: ${err.message}\n\n${usageText}`)
      return EXIT_USAGE
    }
    io.stderr.write(`error: ${errorMessage(err)}\n`)
    return EXIT_USAGE
  }
}

export function runCheck(argv: string[], io: ToolIo): Promise<number> {
  return run(CHECK_USAGE, io, async () => {
    const flags = parseFlags(CHECK_COMMAND, argv)
    if (flags.help) {
      io.stdout.write(CHECK_USAGE)
      return 0
    }
    const paths = [...flags.strings('filename'), ...flags.args]
    if (paths.length === 0) throw new UsageError('no manifests: give -f PATH (a file, a directory, or - for stdin)')
    const mode = (flags.string('mode') ?? 'enforce') as Mode
    const output = flags.string('output') ?? 'text'
    const pullable = parsePullableRegistries(flags.string('pullable-registries') ?? '*')
    if (!pullable.ok) throw new UsageError(`--pullable-registries: ${pullable.error}`)
    const now = io.now()
    const objects = await readManifests(paths, io.stdin)
    const inventory = await loadInventory(inventoryOptions(flags, now, io))
    addManifestRuntimeClasses(objects, inventory)
    const steerMax = flags.string('steer-max-nodes')
    const steer = {
      global: flags.bool('steer'),
      maxNodes: steerMax === undefined ? DEFAULT_STEER_MAX_NODES : integerValue(steerMax, '--steer-max-nodes', 1, 5000),
    }
    const report = checkObjects(objects, {
      inventory,
      mode,
      namespace: flags.string('namespace') ?? 'default',
      now,
      pullable: pullable.value,
      steer,
    })
    if (output === 'json') {
      io.stdout.write(JSON.stringify({ ...report, summary: summaryOf(report) }, null, 2) + '\n')
    } else {
      const text = renderText(report)
      io.stderr.write(text.stderr)
      io.stdout.write(text.stdout)
    }
    return exitCodeOf(report)
  })
}

function summaryOf(report: ReturnType<typeof checkObjects>) {
  const count = (v: string) => report.results.filter((r) => r.verdict === v).length
  return {
    checked: report.results.length,
    denied: count('deny'),
    warned: count('warn'),
    allowed: count('allow'),
    invalid: count('invalid'),
    ignored: report.ignored,
  }
}

export function runWhere(argv: string[], io: ToolIo): Promise<number> {
  return run(WHERE_USAGE, io, async () => {
    const flags = parseFlags(WHERE_COMMAND, argv)
    if (flags.help) {
      io.stdout.write(WHERE_USAGE)
      return 0
    }
    const image = flags.args[0]
    if (image === undefined || flags.args.length !== 1) throw new UsageError('give exactly one IMAGE')
    const output = flags.string('output') ?? 'table'
    const now = io.now()
    const inventory = await loadInventory(inventoryOptions(flags, now, io))
    const runtimeClass = flags.string('runtime-class')
    const report = whereIs(inventory, image, now, runtimeClass === undefined ? {} : { runtimeClass })
    if (output === 'json') {
      const rows = report.rows.map((r) => ({
        ...r,
        observedAt: Number.isNaN(r.observedAt) ? null : new Date(r.observedAt).toISOString(),
      }))
      io.stdout.write(JSON.stringify({ ...report, rows }, null, 2) + '\n')
    } else {
      io.stdout.write(renderWhere(report, now))
    }
    return report.error === undefined ? 0 : 2
  })
}

export function runExplain(argv: string[], io: ToolIo): Promise<number> {
  return run(EXPLAIN_USAGE, io, async () => {
    const flags = parseFlags(EXPLAIN_COMMAND, argv)
    if (flags.help) {
      io.stdout.write(EXPLAIN_USAGE)
      return 0
    }
    const now = io.now()
    let pod: unknown
    const filename = flags.string('filename')
    if (filename !== undefined) {
      const text = filename === '-' ? await io.stdin() : await readFile(filename, 'utf8')
      const pods = parseManifests(text, filename).filter((m) => m.object['kind'] === 'Pod')
      if (pods.length !== 1) throw new UsageError(`${filename}: expected one Pod, found ${pods.length}`)
      pod = pods[0]!.object
    } else {
      const [what, name] = flags.args
      if ((what !== 'pod' && what !== 'pods' && what !== 'po') || name === undefined || flags.args.length !== 2) {
        throw new UsageError('expected: explain pod NAME')
      }
      pod = await readPod(name, flags.string('namespace'), flags.string('kubeconfig'))
    }
    const inventory = await loadInventory(inventoryOptions(flags, now, io))
    io.stdout.write(explainPod(pod, inventory, now))
    return 0
  })
}

async function readPod(name: string, namespace: string | undefined, kubeconfig: string | undefined): Promise<unknown> {
  const kc = await loadKubeConfig(kubeconfig)
  const ns = namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default'
  try {
    // As the apiserver wrote it (raw JSON), as a manifest file would be read.
    return await getObject(kubeConfigHttp(kc), namespacedPath('v1', ns, 'pods', name))
  } catch (err) {
    if (err instanceof ApiStatusError && err.code === 404)
      throw new Error(`pod "${name}" not found in namespace "${ns}"`, { cause: err })
    throw new Error(`cannot read pod ${ns}/${name}: ${errorMessage(err)}`, { cause: err })
  }
}
