import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const DAY_MS = 86_400_000

export interface Teardown {
  teardown(fn: () => unknown): void
}

export async function tmpDir(t: Teardown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'neverpull-certs-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

export function capture(): {
  out: { stdout: { write(s: string): boolean }; stderr: { write(s: string): boolean } }
  stdout: () => string
  stderr: () => string
} {
  let stdout = ''
  let stderr = ''
  return {
    out: {
      stdout: { write: (s: string) => ((stdout += s), true) },
      stderr: { write: (s: string) => ((stderr += s), true) },
    },
    stdout: () => stdout,
    stderr: () => stderr,
  }
}
