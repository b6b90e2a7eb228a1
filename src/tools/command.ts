import { readFile } from 'node:fs/promises'
import { parsePullableRegistries } from '../api/registries.js'
import { parseArgs } from 'node:util'
import { parseDuration } from '../util/duration.js'
import { isMode } from '../inventory/convert.js'
import type { Mode } from '../api/types.js'
import { checkObjects, exitCodeOf, renderText } from './check.js'
import { explainPod } from './explain.js'
import { loadKubeConfig } from '../kube/config.js'
import { loadInventory } from './inventory-source.js'
import { ManifestError, parseManifests, readManifests } from './manifests.js'
import { renderWhere, whereIs } from './where.js'

export interface ToolIo {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  stdin: () => Promise<string>
  now: () => number
}

const INVENTORY_FLAGS = `Inventory (one of):
  --inventory-file FILE   a snapshot: kubectl get nodes,nodeimagesets,namespaces -o yaml > FILE
  --kubeconfig FILE       a live cluster (default: $KUBECONFIG or ~/.kube/config, current context)
  --stale-after DUR       a live node image list older than this is unknown (15m)`

export const CHECK_USAGE = `Usage: neverpull-guard check -f PATH [-f PATH ...] [flags]

Gives the webhook's verdict on manifests before they are applied: denials and warnings as
kubectl apply would print them. PATH is a file, a directory (recursive) or - for stdin.
Exit 0 when nothing is denied, 1 when something is, 2 for unusable input.

  -f, --filename PATH     manifests (repeatable; plain arguments work too)
  -n, --namespace NS      namespace for objects without one (default)
  --mode MODE             enforce | warn | audit, where the namespace has no neverpull.dev/mode label (enforce)
  --pullable-registries LIST
                          registries the nodes can pull from, as the webhook's flag: host[:port],... | * | none (*)
  -o, --output FORMAT     text | json (text)
${INVENTORY_FLAGS}
`

export const WHERE_USAGE = `Usage: neverpull-guard where IMAGE [flags]

Which nodes hold IMAGE (any reference form), which hold the same repository under other
tags, and which nodes' image lists are stale or missing.

  -o, --output FORMAT     table | json (table)
${INVENTORY_FLAGS}
`

export const EXPLAIN_USAGE = `Usage: neverpull-guard explain pod NAME [-n NS] [flags]

For a pod (typically stuck in ErrImageNeverPull): its node, each imagePullPolicy: Never
container, whether its image is on that node now, where else it is, and the fix.

  -n, --namespace NS      the pod's namespace (default: the context's, else default)
  -f, --filename FILE     read the pod from a file (kubectl get pod NAME -o yaml) instead of the cluster
${INVENTORY_FLAGS}
`

class UsageError extends Error {}

const common = {
  'inventory-file': { type: 'string' },
  kubeconfig: { type: 'string' },
  'stale-after': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

function staleAfter(text: string | undefined): number {
  const ms = parseDuration(text ?? '15m')
  if (ms === undefined || ms <= 0) throw new UsageError(`--stale-after: "${text}" is not a duration (examples: 10m, 1h)`)
  return ms
}

function inventoryOptions(values: { 'inventory-file'?: string; kubeconfig?: string; 'stale-after'?: string }, now: number) {
  const options: Parameters<typeof loadInventory>[0] = { staleAfterMs: staleAfter(values['stale-after']), now }
  if (values['inventory-file'] !== undefined) options.inventoryFile = values['inventory-file']
  else if (values.kubeconfig !== undefined) options.kubeconfig = values.kubeconfig
  return options
}

async function run(usage: string, io: ToolIo, body: () => Promise<number>): Promise<number> {
  try {
    return await body()
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`error: ${(err as Error).message}\n\n${usage}`)
      return 2
    }
    if (err instanceof ManifestError) {
      io.stderr.write(`error: ${err.message}\n`)
      return 2
    }
    io.stderr.write(`error: ${(err as Error).message}\n`)
    return 2
  }
}

export function runCheck(argv: string[], io: ToolIo): Promise<number> {
  return run(CHECK_USAGE, io, async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...common,
        filename: { type: 'string', short: 'f', multiple: true },
        namespace: { type: 'string', short: 'n' },
        mode: { type: 'string' },
        'pullable-registries': { type: 'string' },
        output: { type: 'string', short: 'o' },
      },
    })
    if (values.help) {
      io.stdout.write(CHECK_USAGE)
      return 0
    }
    const paths = [...(values.filename ?? []), ...positionals]
    if (paths.length === 0) throw new UsageError('no manifests: give -f PATH (a file, a directory, or - for stdin)')
    const mode = values.mode ?? 'enforce'
    if (!isMode(mode) || mode === 'off') throw new UsageError(`--mode: "${mode}" is not one of enforce, warn, audit`)
    const output = values.output ?? 'text'
    if (output !== 'text' && output !== 'json') throw new UsageError(`--output: "${output}" is not one of text, json`)
    const pullable = parsePullableRegistries(values['pullable-registries'] ?? '*')
    if (!pullable.ok) throw new UsageError(`--pullable-registries: ${pullable.error}`)
    const now = io.now()
    const objects = await readManifests(paths, io.stdin)
    const inventory = await loadInventory(inventoryOptions(values, now))
    const report = checkObjects(objects, { inventory, mode: mode as Mode, namespace: values.namespace ?? 'default', now, pullable: pullable.value })
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
  return { checked: report.results.length, denied: count('deny'), warned: count('warn'), allowed: count('allow'), invalid: count('invalid'), ignored: report.ignored }
}

export function runWhere(argv: string[], io: ToolIo): Promise<number> {
  return run(WHERE_USAGE, io, async () => {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...common, output: { type: 'string', short: 'o' } } })
    if (values.help) {
      io.stdout.write(WHERE_USAGE)
      return 0
    }
    if (positionals.length !== 1) throw new UsageError('give exactly one IMAGE')
    const output = values.output ?? 'table'
    if (output !== 'table' && output !== 'json') throw new UsageError(`--output: "${output}" is not one of table, json`)
    const now = io.now()
    const inventory = await loadInventory(inventoryOptions(values, now))
    const report = whereIs(inventory, positionals[0]!, now)
    if (output === 'json') {
      const rows = report.rows.map((r) => ({ ...r, observedAt: Number.isNaN(r.observedAt) ? null : new Date(r.observedAt).toISOString() }))
      io.stdout.write(JSON.stringify({ ...report, rows }, null, 2) + '\n')
    } else {
      io.stdout.write(renderWhere(report, now))
    }
    return report.error === undefined ? 0 : 2
  })
}

export function runExplain(argv: string[], io: ToolIo): Promise<number> {
  return run(EXPLAIN_USAGE, io, async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { ...common, namespace: { type: 'string', short: 'n' }, filename: { type: 'string', short: 'f' } },
    })
    if (values.help) {
      io.stdout.write(EXPLAIN_USAGE)
      return 0
    }
    const now = io.now()
    let pod: unknown
    if (values.filename !== undefined) {
      const text = values.filename === '-' ? await io.stdin() : await readFile(values.filename, 'utf8')
      const pods = parseManifests(text, values.filename).filter((m) => m.object['kind'] === 'Pod')
      if (pods.length !== 1) throw new UsageError(`${values.filename}: expected one Pod, found ${pods.length}`)
      pod = pods[0]!.object
    } else {
      const [what, name] = positionals
      if ((what !== 'pod' && what !== 'pods' && what !== 'po') || name === undefined || positionals.length !== 2) {
        throw new UsageError('expected: explain pod NAME')
      }
      pod = await readPod(name, values.namespace, values.kubeconfig)
    }
    const inventory = await loadInventory(inventoryOptions(values, now))
    io.stdout.write(explainPod(pod, inventory, now))
    return 0
  })
}

async function readPod(name: string, namespace: string | undefined, kubeconfig: string | undefined): Promise<unknown> {
  const { CoreV1Api } = await import('@kubernetes/client-node')
  const kc = await loadKubeConfig(kubeconfig)
  const ns = namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default'
  try {
    return await kc.makeApiClient(CoreV1Api).readNamespacedPod({ name, namespace: ns })
  } catch (err) {
    const code = (err as { code?: number }).code
    if (code === 404) throw new Error(`pod "${name}" not found in namespace "${ns}"`)
    throw new Error(`cannot read pod ${ns}/${name}: ${(err as Error).message}`)
  }
}
