import { X509Certificate } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ensureCertificates, writeFileAtomic } from '../../src/certs/files.js'
import { generateServing } from '../../src/certs/generate.js'
import { startTestWebhook } from '../helpers/webhook.js'
import { failed, keepAliveAgent, loop, servedSerial, sleep, summary, type Outcome } from './load.js'

// The serving certificate is replaced on disk while the webhook is under sustained load, as a
// cert-manager or `neverpull-guard certs` rotation does. No request may fail, and a new
// connection after the swap must be served the new certificate.

const LOAD_MS = 5000
const SWAP_AT_MS = 2000
const HOSTS = ['127.0.0.1', 'localhost']

type Layout = 'rename' | 'secret-volume'

async function run(t: Test, layout: Layout): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'neverpull-tls-reload-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const issued = join(dir, 'issued')
  await ensureCertificates({
    outDir: issued,
    service: 'neverpull-guard',
    namespace: 'neverpull-system',
    hosts: HOSTS,
    days: 30,
    force: false,
    now: new Date(),
  })
  const ca = {
    cert: await readFile(join(issued, 'ca.crt'), 'utf8'),
    key: await readFile(join(issued, 'ca.key'), 'utf8'),
  }

  // rename: tls.crt and tls.key are files, replaced by write-temp-then-rename one after the other.
  // secret-volume: what the kubelet does for a Secret: tls.crt -> ..data/tls.crt, ..data -> a
  // timestamped directory, and an update swaps the ..data symlink in one rename.
  const served = join(dir, 'tls')
  await mkdir(served)
  const first = {
    cert: await readFile(join(issued, 'tls.crt'), 'utf8'),
    key: await readFile(join(issued, 'tls.key'), 'utf8'),
  }
  if (layout === 'rename') {
    await writeFileAtomic(join(served, 'tls.crt'), first.cert, 0o644)
    await writeFileAtomic(join(served, 'tls.key'), first.key, 0o600)
  } else {
    await mkdir(join(served, '..2026_11_21_06_00_00.1'))
    await writeFile(join(served, '..2026_11_21_06_00_00.1', 'tls.crt'), first.cert)
    await writeFile(join(served, '..2026_11_21_06_00_00.1', 'tls.key'), first.key)
    await symlink('..2026_11_21_06_00_00.1', join(served, '..data'))
    await symlink('..data/tls.crt', join(served, 'tls.crt'))
    await symlink('..data/tls.key', join(served, 'tls.key'))
  }

  const { url, lines } = await startTestWebhook(t, {
    tls: { cert: join(served, 'tls.crt'), key: join(served, 'tls.key') },
  })
  const port = Number(new URL(url).port)

  const oldSerial = new X509Certificate(first.cert).serialNumber.toUpperCase()
  t.equal(await servedSerial('127.0.0.1', port, ca.cert), oldSerial, 'serving the first certificate')

  const body = await readFile('examples/reviews/pod-denied-typo.json', 'utf8')
  const next = generateServing({
    ca,
    service: 'neverpull-guard',
    namespace: 'neverpull-system',
    hosts: HOSTS,
    days: 30,
    now: new Date(),
  })
  const newSerial = new X509Certificate(next.cert).serialNumber.toUpperCase()
  t.not(newSerial, oldSerial)

  const agent = keepAliveAgent(ca.cert, 6)
  t.teardown(() => agent.destroy())
  const started = performance.now()
  const stop = (): boolean => performance.now() - started > LOAD_MS
  const kept: Outcome[] = []
  const fresh: Outcome[] = []
  const loops = [
    ...Array.from({ length: 6 }, () => loop({ url, ca: ca.cert, body, agent, timeoutMs: 5000 }, stop, kept)),
    // A new TLS handshake per request: these meet the swap itself.
    ...Array.from({ length: 2 }, () => loop({ url, ca: ca.cert, body, agent: false, timeoutMs: 5000 }, stop, fresh)),
  ]

  await sleep(SWAP_AT_MS)
  const swappedAt = performance.now()
  if (layout === 'rename') {
    await writeFileAtomic(join(served, 'tls.key'), next.key, 0o600)
    await writeFileAtomic(join(served, 'tls.crt'), next.cert, 0o644)
  } else {
    const version = join(served, '..2026_11_21_06_05_00.2')
    await mkdir(version)
    await writeFile(join(version, 'tls.crt'), next.cert)
    await writeFile(join(version, 'tls.key'), next.key)
    await symlink('..2026_11_21_06_05_00.2', join(served, '..data_tmp'))
    await rename(join(served, '..data_tmp'), join(served, '..data'))
    await rm(join(served, '..2026_11_21_06_00_00.1'), { recursive: true })
  }

  // A new connection must get the new certificate soon (the watcher debounces 250 ms).
  let seenAfterMs: number | undefined
  while (performance.now() - swappedAt < 3000) {
    if ((await servedSerial('127.0.0.1', port, ca.cert)) === newSerial) {
      seenAfterMs = performance.now() - swappedAt
      break
    }
    await sleep(50)
  }
  await Promise.all(loops)

  const all = [...kept, ...fresh]
  const after = all.filter((o) => o.start > swappedAt + (seenAfterMs ?? 0))
  t.comment(
    `${layout}: keep-alive ${summary(kept)}; fresh connections ${summary(fresh)}; ${after.length} requests after the new certificate was served; new certificate served ${seenAfterMs?.toFixed(0)} ms after the swap`,
  )
  t.ok(all.length > 200, `sustained load (${all.length} requests in ${LOAD_MS} ms)`)
  t.same(all.filter(failed), [], 'no request failed: non-2xx, error or timeout')
  t.ok(
    all.every((o) => o.allowed === false),
    'every answer is the denial the body calls for',
  )
  t.ok(seenAfterMs !== undefined, 'a new connection after the swap is served the new certificate')
  t.equal(await servedSerial('127.0.0.1', port, ca.cert), newSerial, 'new serial')
  t.ok(
    after.some((o) => o.reused) && after.some((o) => !o.reused),
    'requests on kept-alive and on new connections after the swap',
  )
  t.ok(
    lines.some((l) => l.includes('serving certificate reloaded')),
    'the reload is logged',
  )
}

t.test('TLS files replaced by rename during sustained load', (t) => run(t, 'rename'))
t.test('TLS Secret volume updated (..data symlink swap) during sustained load', (t) => run(t, 'secret-volume'))
