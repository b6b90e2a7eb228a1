import { spawn, spawnSync } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import t from 'tap'
import { review } from '../helpers/fixtures.js'
import type { AdmissionReviewReply } from '../../src/admission/review.js'

// The local run path as a person follows it: `certs --host 127.0.0.1`, the webhook started
// with those files, a client that trusts only ca.crt; then the certificate re-issued on
// disk and picked up by the running webhook at the next handshake.

const CLI = ['--import', 'tsx', 'src/cli.ts']

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

interface Answer {
  status: number
  body: string
  serial: string
}

function call(port: number, ca: string, path: string, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: body === undefined ? 'GET' : 'POST',
        ca,
        agent: false,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber
        let text = ''
        res.on('data', (c: Buffer) => (text += c.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, serial }))
      },
    )
    req.on('error', reject)
    req.setTimeout(5000, () => req.destroy(new Error('timeout')))
    req.end(body === undefined ? undefined : JSON.stringify(body))
  })
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

t.test('certs --host 127.0.0.1, webhook, CA-verified client, certificate replaced on disk', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'neverpull-local-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const certs = (...hosts: string[]) =>
    spawnSync(process.execPath, [...CLI, 'certs', '--out-dir', dir, ...hosts.flatMap((h) => ['--host', h])], {
      encoding: 'utf8',
    })

  const first = certs('127.0.0.1')
  t.equal(first.status, 0, first.stderr)
  const ca = await readFile(join(dir, 'ca.crt'), 'utf8')

  const port = await freePort()
  const child = spawn(
    process.execPath,
    [
      ...CLI,
      'webhook',
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--metrics-port',
      '0',
      '--tls-cert',
      join(dir, 'tls.crt'),
      '--tls-key',
      join(dir, 'tls.key'),
      '--inventory-file',
      'examples/inventory.yaml',
      '--shutdown-delay',
      '0s',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let logs = ''
  child.stdout.on('data', (c: Buffer) => (logs += c.toString()))
  child.stderr.on('data', (c: Buffer) => (logs += c.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  t.teardown(() => {
    child.kill('SIGKILL')
  })

  await until('the webhook to be ready', async () =>
    (await call(port, ca, '/readyz')).status === 200 ? true : undefined,
  )
  const body = review('deployment-update-image')
  const before = await call(port, ca, '/validate?timeout=10s', body)
  t.equal(before.status, 200)
  const reply = JSON.parse(before.body) as AdmissionReviewReply
  t.equal(reply.response.uid, body['request'].uid)
  t.equal(reply.response.allowed, false)

  const second = certs('127.0.0.1', 'localhost')
  t.equal(second.status, 0, second.stderr)
  t.match(second.stderr + second.stdout, /kept|created/)
  t.equal(await readFile(join(dir, 'ca.crt'), 'utf8'), ca, 'the CA is kept; only the serving certificate is re-issued')

  const after = await until('the new certificate at the next handshake', async () => {
    const a = await call(port, ca, '/validate?timeout=10s', body)
    return a.serial !== before.serial ? a : undefined
  })
  t.not(after.serial, before.serial)
  t.equal(
    (JSON.parse(after.body) as AdmissionReviewReply).response.uid,
    body['request'].uid,
    'and it still answers, verified against ca.crt',
  )
  t.match(logs, /serving certificate reloaded/)

  child.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM: clean exit')
})
