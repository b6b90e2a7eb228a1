import { createServer, type Server } from 'node:https'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout } from 'node:timers/promises'
import { connect, type ConnectionOptions } from 'node:tls'
import t, { type Test } from 'tap'
import { ensureCertificates } from '../../src/certs/files.js'
import { TLS_OPTIONS } from '../../src/server/server.js'
import { localCertificates } from '../helpers/local-webhook.js'
import { startTestWebhook } from '../helpers/webhook.js'

type Probe = { ok: true; protocol: string; cipher: string } | { ok: false; code: string }

/** One TLS handshake; a refusal carries the alert the server sent (ERR_SSL_..._ALERT_...). */
function handshake(port: number, ca: string, options: ConnectionOptions): Promise<Probe> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...options }, () => {
      const result: Probe = { ok: true, protocol: socket.getProtocol() ?? '', cipher: socket.getCipher().name }
      socket.end()
      resolve(result)
    })
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, code: err.code ?? err.message }))
  })
}

// OpenSSL 3 clients refuse TLS < 1.2 themselves at the default security level; level 0 makes
// the client really offer 1.1, so a refusal below can only come from the server.
const TLS11 = { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' } as const
const TLS12_CBC = {
  maxVersion: 'TLSv1.2',
  ciphers: 'ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA',
} as const
const TLS12_RSA_KX = { maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA' } as const
const TLS12_ECDHE_GCM = { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' } as const

async function checkPolicy(t: Test, port: number, ca: string, when: string): Promise<void> {
  t.match(
    await handshake(port, ca, TLS11),
    { ok: false, code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' },
    `${when}: TLS 1.1 refused by the server`,
  )
  t.match(
    await handshake(port, ca, TLS12_CBC),
    { ok: false, code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' },
    `${when}: TLS 1.2 CBC suites refused`,
  )
  t.match(
    await handshake(port, ca, TLS12_RSA_KX),
    { ok: false, code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' },
    `${when}: TLS 1.2 without forward secrecy refused`,
  )
  t.same(
    await handshake(port, ca, TLS12_ECDHE_GCM),
    { ok: true, protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256' },
    `${when}: TLS 1.2 ECDHE-GCM accepted`,
  )
  t.match(
    await handshake(port, ca, { maxVersion: 'TLSv1.2' }),
    { ok: true, protocol: 'TLSv1.2', cipher: /^ECDHE-(RSA|ECDSA)-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/ },
    `${when}: a TLS 1.2 client gets a forward-secret AEAD suite`,
  )
  t.match(
    await handshake(port, ca, {}),
    { ok: true, protocol: 'TLSv1.3', cipher: /^TLS_(AES_\d+_GCM_SHA\d+|CHACHA20_POLY1305_SHA256)$/ },
    `${when}: TLS 1.3 by default`,
  )
}

t.test(
  "the webhook's TLS: 1.2 at least, forward-secret AEAD suites only, 1.3 preferred; also after a certificate reload",
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'neverpull-tls-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const certOptions = {
      outDir: dir,
      service: 'neverpull-guard',
      namespace: 'neverpull-system',
      hosts: ['127.0.0.1', 'localhost'],
      days: 30,
      now: new Date(),
    }
    await ensureCertificates({ ...certOptions, force: false })
    const { running, lines } = await startTestWebhook(t, {
      tls: { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') },
    })
    const port = Number(new URL(running.url).port)

    await checkPolicy(t, port, await readFile(join(dir, 'ca.crt'), 'utf8'), 'at start')

    // A new CA and certificate on disk: the server swaps its secure context, with the same policy.
    await ensureCertificates({ ...certOptions, force: true })
    while (!lines.some((l) => l.includes('serving certificate reloaded'))) await setTimeout(20)
    await checkPolicy(t, port, await readFile(join(dir, 'ca.crt'), 'utf8'), 'after reload')
  },
)

t.test(
  "control: the refused clients do connect to a server with Node's defaults, so the refusals above are the policy",
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'neverpull-tls-control-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    await localCertificates(dir)
    const [cert, key, ca] = await Promise.all([
      readFile(join(dir, 'tls.crt'), 'utf8'),
      readFile(join(dir, 'tls.key'), 'utf8'),
      readFile(join(dir, 'ca.crt'), 'utf8'),
    ])
    const server: Server = createServer({ cert, key }, (_, res) => res.end())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
    const port = (server.address() as { port: number }).port
    t.match(
      await handshake(port, ca, TLS12_CBC),
      { ok: true, protocol: 'TLSv1.2', cipher: /-SHA(256)?$/ },
      'CBC offered and taken by a default server',
    )
    t.match(
      await handshake(port, ca, TLS12_RSA_KX),
      { ok: true, protocol: 'TLSv1.2', cipher: /^AES/ },
      'RSA key exchange offered and taken by a default server',
    )
    t.equal(TLS_OPTIONS.minVersion, 'TLSv1.2')
    t.notMatch(
      TLS_OPTIONS.ciphers,
      /CBC|SHA:|-SHA$|^AES|:AES|RSA-AES\d+-SHA\b|3DES|RC4|NULL|EXPORT/,
      'no CBC, no static RSA, no legacy suite in the list',
    )
  },
)
