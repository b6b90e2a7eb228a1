#!/usr/bin/env node
import { main } from './cli/main.js'

// The bin: one binary for every role (webhook, node agent, certificates, offline tools),
// installed also as `kubectl-neverpull`, so `kubectl neverpull check ...` works. It only
// wires the process in: argv, streams, environment, signals and the exit code.

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

process.exitCode = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: readStdin,
  env: process.env,
  signals: process,
  now: Date.now,
})
