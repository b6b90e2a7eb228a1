import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'

// A real containerd for tests: private root, state and socket under a tmp dir, so it never
// touches a containerd the machine may already run. Needs root (containerd mounts and
// chowns); the CRI plugin runs without cgroups and with the native snapshotter so it works
// inside an unprivileged-ish container.

const run = promisify(execFile)

export const NAMESPACE = 'k8s.io'

export interface Containerd {
  readonly dir: string
  readonly socket: string
  /** `unix:///...` form for the agent's CRI client. */
  readonly endpoint: string
  importImage(tarPath: string): Promise<void>
  removeImage(ref: string): Promise<void>
  /** `ctr -n NAMESPACE images import`: where the kubelet does not look unless NAMESPACE is k8s.io. */
  importImageInto(namespace: string, tarPath: string): Promise<void>
  removeImageFrom(namespace: string, ref: string): Promise<void>
  /** `ctr images ls -q` in the k8s.io namespace. */
  listRefs(): Promise<string[]>
  stop(): Promise<void>
  restart(): Promise<void>
  /** Stops containerd and removes the tmp dir; safe to call twice. */
  cleanup(): Promise<void>
  /** containerd's stderr so far, for failure messages. */
  log(): string
}

async function onPath(bin: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    try {
      if ((await stat(join(dir, bin))).isFile()) return true
    } catch {
      // not in this dir
    }
  }
  return false
}

/** `undefined` when containerd and ctr are usable here, else why not (for `t.skip`). */
export async function containerdSkipReason(): Promise<string | undefined> {
  if (!(await onPath('containerd')) || !(await onPath('ctr'))) {
    return 'containerd not installed: apt-get install -y containerd'
  }
  if (process.getuid?.() !== 0) return 'containerd tests need root'
  return undefined
}

function configToml(dir: string, socket: string): string {
  return [
    'version = 2',
    `root = ${JSON.stringify(join(dir, 'root'))}`,
    `state = ${JSON.stringify(join(dir, 'state'))}`,
    '',
    '[grpc]',
    `  address = ${JSON.stringify(socket)}`,
    '',
    '[plugins."io.containerd.grpc.v1.cri"]',
    '  disable_cgroup = true',
    '  [plugins."io.containerd.grpc.v1.cri".containerd]',
    '    snapshotter = "native"',
    '',
  ].join('\n')
}

async function isSocket(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isSocket()
  } catch {
    return false
  }
}

export async function startContainerd(options: { startTimeoutMs?: number } = {}): Promise<Containerd> {
  const startTimeoutMs = options.startTimeoutMs ?? 20_000
  // Short prefix: a unix socket path must stay under 108 bytes.
  const dir = await mkdtemp(join(tmpdir(), 'npg-ctrd-'))
  const socket = join(dir, 'containerd.sock')
  const configPath = join(dir, 'config.toml')
  await writeFile(configPath, configToml(dir, socket))

  let child: ChildProcess | undefined
  let stderr = ''
  let cleaned = false
  // Last resort when the test process exits without its teardown (a crash): never leave a
  // containerd running. 'exit' handlers must be synchronous, so SIGKILL.
  const onExit = () => child?.kill('SIGKILL')
  process.once('exit', onExit)

  async function start(): Promise<void> {
    const proc = spawn('containerd', ['--config', configPath, '--log-level', 'warn'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    child = proc
    proc.stderr?.setEncoding('utf8')
    proc.stderr?.on('data', (chunk: string) => {
      // Keep the tail only: a long test run must not grow this without bound.
      stderr = (stderr + chunk).slice(-20_000)
    })
    let exited: string | undefined
    proc.once('exit', (code, signal) => {
      exited = `containerd exited (code ${code}, signal ${signal})`
    })
    proc.once('error', (err) => {
      exited = `containerd failed to start: ${err.message}`
    })
    const deadline = Date.now() + startTimeoutMs
    for (;;) {
      if (exited) throw new Error(`${exited}\n${stderr}`)
      if (await isSocket(socket)) {
        try {
          await run('ctr', ['-a', socket, 'version'], { timeout: 5_000 })
          return
        } catch {
          // socket there but not serving yet
        }
      }
      if (Date.now() > deadline)
        throw new Error(`containerd did not serve ${socket} within ${startTimeoutMs} ms\n${stderr}`)
      await sleep(50)
    }
  }

  async function stop(): Promise<void> {
    const proc = child
    child = undefined
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    const gone = new Promise<void>((r) => proc.once('exit', () => r()))
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000)
    await gone
    clearTimeout(timer)
  }

  async function ctr(...args: string[]): Promise<string> {
    return ctrIn(NAMESPACE, ...args)
  }

  async function ctrIn(namespace: string, ...args: string[]): Promise<string> {
    try {
      const { stdout } = await run('ctr', ['-a', socket, '-n', namespace, ...args], { timeout: 30_000 })
      return stdout
    } catch (err) {
      const e = err as { stderr?: string; message: string }
      throw new Error(`ctr ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: err })
    }
  }

  const handle: Containerd = {
    dir,
    socket,
    endpoint: `unix://${socket}`,
    async importImage(tarPath) {
      await ctr('images', 'import', '--snapshotter', 'native', tarPath)
    },
    async removeImage(ref) {
      await ctr('images', 'rm', '--sync', ref)
    },
    async importImageInto(namespace, tarPath) {
      await ctrIn(namespace, 'images', 'import', '--snapshotter', 'native', tarPath)
    },
    async removeImageFrom(namespace, ref) {
      await ctrIn(namespace, 'images', 'rm', '--sync', ref)
    },
    async listRefs() {
      return (await ctr('images', 'ls', '-q')).split('\n').filter((l) => l !== '')
    },
    stop,
    async restart() {
      await stop()
      await start()
    },
    async cleanup() {
      if (cleaned) return
      cleaned = true
      await stop()
      process.removeListener('exit', onExit)
      await rm(dir, { recursive: true, force: true, maxRetries: 3 })
    },
    log: () => stderr,
  }

  try {
    await start()
  } catch (err) {
    await handle.cleanup()
    throw err
  }
  return handle
}
