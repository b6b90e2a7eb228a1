import autocannon from 'autocannon'
import { fork, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import type { Body } from './bodies.js'
import type { ChildArgs, ChildReady, ChildUsage } from './server-child.js'

// autocannon rounds against a server child. The client runs in this process over keep-alive
// HTTPS connections (autocannon does not verify certificates); each run reports req/s,
// latency percentiles, and the server child's CPU time per request (its process.cpuUsage
// delta over the run): on a shared 2-core machine, CPU per request is the steadier figure.

const DIST = new URL('../dist/', import.meta.url).href

/**
 * The server child as JavaScript, so that it runs without tsx: tsx's loader runs in a thread
 * of its own, a second V8 isolate that added 33 MiB to every RSS the child reported, which
 * the webhook in a cluster does not carry (`node dist/cli.js webhook`). server-child.ts and
 * the files it imports, relative import by relative import, are transpiled as they are
 * into bench/.child/ (gitignored), in the same layout; the webhook it starts is dist/.
 */
function compiledChild(): string {
  const root = new URL('../', import.meta.url)
  const out = new URL('./.child/', import.meta.url)
  const pending = ['bench/server-child.ts']
  const done = new Set<string>()
  while (pending.length > 0) {
    const path = pending.pop()!
    if (done.has(path)) continue
    done.add(path)
    const js = ts.transpileModule(readFileSync(new URL(path, root), 'utf8'), {
      fileName: path,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    }).outputText
    const target = new URL(path.replace(/\.ts$/, '.js'), out)
    mkdirSync(new URL('./', target), { recursive: true })
    writeFileSync(target, js)
    // Type-only imports are gone from the output: what is left is loaded at run time.
    for (const m of js.matchAll(/(?:from|import)\s*'(\.{1,2}\/[^']+)\.js'/g))
      pending.push(new URL(`${m[1]!}.ts`, new URL(path, root)).href.slice(root.href.length))
  }
  return fileURLToPath(new URL('./bench/server-child.js', out))
}

export interface Server {
  kind: ChildArgs['kind']
  url: string
  ready: ChildReady
  usage(): Promise<ChildUsage>
  stop(): Promise<void>
}

export async function startServer(args: ChildArgs, maxOldSpaceMb = 6144): Promise<Server> {
  const child: ChildProcess = fork(compiledChild(), [JSON.stringify({ dist: DIST, ...args })], {
    // BENCH_CPU_PROF=DIR writes each server child's CPU profile there (the profiles behind docs/BENCHMARKS.md).
    execArgv: [
      '--expose-gc',
      `--max-old-space-size=${maxOldSpaceMb}`,
      ...(process.env['BENCH_CPU_PROF'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_CPU_PROF']}`] : []),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  let next = 0
  const waiting = new Map<number, (u: ChildUsage) => void>()
  const ready = await new Promise<ChildReady>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${args.kind} server exited with ${code}`)))
    child.on('message', (m: ChildReady | ChildUsage) => {
      if (m.type === 'ready') resolve(m)
      else if (m.type === 'usage') {
        waiting.get(m.id)?.(m)
        waiting.delete(m.id)
      }
    })
  })
  child.removeAllListeners('exit')
  return {
    kind: args.kind,
    url: ready.url,
    ready,
    usage: () =>
      new Promise((resolve) => {
        const id = next++
        waiting.set(id, resolve)
        child.send({ type: 'usage', id })
      }),
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve())
        child.send({ type: 'stop' })
      }),
  }
}

/** One request, to check the server answers the body as expected before loading it. */
export function review(
  url: string,
  payload: string,
): Promise<{ status: number; allowed: boolean | undefined; warnings: number }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/validate`,
      { method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (text += c))
        res.on('end', () => {
          const parsed = JSON.parse(text) as { response?: { allowed?: boolean; warnings?: string[] } }
          resolve({
            status: res.statusCode ?? 0,
            allowed: parsed.response?.allowed,
            warnings: parsed.response?.warnings?.length ?? 0,
          })
        })
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

export interface RunResult {
  server: ChildArgs['kind']
  body: string
  round: number
  seconds: number
  requests: number
  rps: number
  latencyMs: { p50: number; p99: number; p99_9: number; mean: number; max: number }
  /** Server CPU (user + system) per request, µs. */
  serverCpuUs: number
  errors: number
  non2xx: number
}

export interface LoadOptions {
  seconds: number
  connections: number
}

export async function run(server: Server, body: Body, round: number, options: LoadOptions): Promise<RunResult> {
  const before = await server.usage()
  const result = await autocannon({
    url: `${server.url}/validate`,
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'kube-apiserver-admission' },
    body: body.payload,
    connections: options.connections,
    pipelining: 1,
    duration: options.seconds,
    timeout: 10,
  })
  const after = await server.usage()
  const cpu = after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system
  const requests = result['2xx'] + result.non2xx
  return {
    server: server.kind,
    body: body.name,
    round,
    seconds: result.duration,
    requests,
    rps: requests / result.duration,
    latencyMs: {
      p50: result.latency.p50,
      p99: result.latency.p99,
      p99_9: result.latency.p99_9,
      mean: result.latency.mean,
      max: result.latency.max,
    },
    serverCpuUs: requests === 0 ? Number.NaN : cpu / requests,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  }
}

/**
 * rounds x bodies x servers, alternating servers run by run so that drift on a shared
 * machine (other tenants, thermal, GC state) lands on both alike.
 */
export async function rounds(
  servers: Server[],
  bodies: Body[],
  count: number,
  options: LoadOptions,
  log: (line: string) => void,
): Promise<RunResult[]> {
  const results: RunResult[] = []
  for (let round = 1; round <= count; round++) {
    for (const body of bodies) {
      const order = round % 2 === 1 ? servers : [...servers].reverse()
      for (const server of order) {
        const r = await run(server, body, round, options)
        results.push(r)
        log(
          `  round ${round} ${server.kind.padEnd(8)} ${body.name.padEnd(26)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.latencyMs.p50} ms  p99 ${r.latencyMs.p99} ms  cpu ${r.serverCpuUs.toFixed(0)} µs/req${r.errors + r.non2xx > 0 ? `  errors ${r.errors} non2xx ${r.non2xx}` : ''}`,
        )
      }
    }
  }
  return results
}
