import t from 'tap'
import { parseWebhookArgs, WEBHOOK_USAGE, webhookConfig } from '../../src/config/webhook.js'

// The webhook's settings: defaults, --dev, flags over NEVERPULL_* variables, and every
// kind of bad value named by its flag.

const ok = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const r = webhookConfig(argv, env)
  if (!r.ok) throw new Error(r.error)
  return r.config
}
const error = (argv: string[], env: NodeJS.ProcessEnv = {}): string => {
  const r = webhookConfig(argv, env)
  return r.ok ? 'accepted' : r.error
}

t.test('defaults for a cluster, and for npm start (--dev)', (t) => {
  const c = ok([], { POD_NAME: 'guard-0', POD_NAMESPACE: 'ops' })
  t.match(c, {
    port: 8443,
    host: '0.0.0.0',
    metricsPort: 9090,
    tlsCert: '/etc/neverpull/tls/tls.crt',
    tlsKey: '/etc/neverpull/tls/tls.key',
    mode: 'enforce',
    staleAfterMs: 15 * 60_000,
    shutdownDelayMs: 5_000,
    logLevel: 'info',
    agentServiceAccount: { namespace: 'neverpull-system', name: 'neverpull-guard-agent' },
    auditIntervalMs: 5 * 60_000,
    podName: 'guard-0',
    podNamespace: 'ops',
    dev: false,
  })
  t.equal(c.inventoryFile, undefined)
  t.equal(c.kubeconfig, undefined)
  const d = ok(['--dev'])
  t.match(d, {
    host: '127.0.0.1',
    metricsPort: 0,
    tlsCert: 'certs/tls.crt',
    tlsKey: 'certs/tls.key',
    shutdownDelayMs: 0,
    inventoryFile: 'examples/inventory.yaml',
    dev: true,
  })
  t.match(
    ok(['--dev', '--host', '0.0.0.0', '--inventory-file', 'x.yaml']),
    { host: '0.0.0.0', inventoryFile: 'x.yaml' },
    'flags win over --dev defaults',
  )
  t.end()
})

t.test('a flag wins over its variable; an empty variable is unset', (t) => {
  const env = {
    NEVERPULL_PORT: '9443',
    NEVERPULL_MODE: 'warn',
    NEVERPULL_STALE_AFTER: '1h',
    NEVERPULL_LOG_LEVEL: 'debug',
    NEVERPULL_TLS_CERT: '',
  }
  t.match(ok([], env), {
    port: 9443,
    mode: 'warn',
    staleAfterMs: 3_600_000,
    logLevel: 'debug',
    tlsCert: '/etc/neverpull/tls/tls.crt',
  })
  t.match(ok(['--port=10443', '--mode', 'audit'], env), { port: 10443, mode: 'audit' })
  t.end()
})

t.test('bad values are refused, naming the flag or the variable', (t) => {
  const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--port', 'https'], {}, /^--port "https" is not a whole number from 0 to 65535$/],
    [['--metrics-port', '65536'], {}, /^--metrics-port "65536" is not a whole number from 0 to 65535$/],
    [[], { NEVERPULL_PORT: '-1' }, /^--port "-1" is not a whole number/],
    [['--mode', 'off'], {}, /^--mode "off" is not one of enforce, warn, audit$/],
    [[], { NEVERPULL_MODE: 'Enforce' }, /^NEVERPULL_MODE "Enforce" is not one of enforce, warn, audit$/],
    [['--stale-after', '0'], {}, /^--stale-after must be longer than 0$/],
    [['--shutdown-delay', '5'], {}, /^--shutdown-delay: invalid duration "5"/],
    [['--audit-interval', 'daily'], {}, /^--audit-interval: invalid duration "daily"/],
    [
      ['--log-level', 'verbose'],
      {},
      /^--log-level "verbose" is not one of fatal, error, warn, info, debug, trace, silent$/,
    ],
    [['--tls-cert'], {}, /^--tls-cert needs a value$/],
    [['--kubeconfig='], {}, /^--kubeconfig needs a non-empty value$/],
    [['--port', '1', '--port', '2'], {}, /^--port given more than once$/],
    [['--dev=true'], {}, /^--dev takes no value$/],
    [['--prot', '1'], {}, /^Unknown option '--prot'/],
  ]
  for (const [argv, env, message] of cases) t.match(error(argv, env), message, argv.join(' ') || JSON.stringify(env))
  t.end()
})

t.test('--help: the generated help, which lists every flag with its variable', (t) => {
  t.equal(parseWebhookArgs(['--help'], {}), 'help')
  for (const flag of [
    '--port N',
    '--metrics-port N',
    '--tls-cert FILE',
    '--mode MODE',
    '--stale-after DUR',
    '--agent-service-account NS:NAME',
    '--dev',
  ]) {
    t.match(WEBHOOK_USAGE, new RegExp(`^  ${flag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} `, 'm'), flag)
  }
  t.match(WEBHOOK_USAGE, /\[NEVERPULL_STALE_AFTER\]/)
  t.end()
})
