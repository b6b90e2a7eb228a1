import t from 'tap'
import { webhookConfig } from '../../src/config/webhook.js'

t.test('--pullable-registries and NEVERPULL_PULLABLE_REGISTRIES', async (t) => {
  const base = ['--tls-cert', 'c', '--tls-key', 'k']
  let r = webhookConfig(base, {})
  t.ok(r.ok && r.config.pullableRegistries.any, 'default * changes nothing')
  r = webhookConfig(base, { NEVERPULL_PULLABLE_REGISTRIES: '' })
  t.ok(r.ok && r.config.pullableRegistries.any, 'an empty variable is unset, never "no registry"')
  r = webhookConfig(base, { NEVERPULL_PULLABLE_REGISTRIES: 'registry.corp:5000' })
  t.ok(r.ok && [...r.config.pullableRegistries.hosts].join() === 'registry.corp:5000', 'from the environment')
  r = webhookConfig([...base, '--pullable-registries', 'localhost,index.docker.io'], { NEVERPULL_PULLABLE_REGISTRIES: 'x.corp' })
  t.ok(r.ok && [...r.config.pullableRegistries.hosts].join() === 'localhost,docker.io', 'the flag wins, normalised')
  r = webhookConfig([...base, '--pullable-registries', 'https://x.corp'], {})
  t.notOk(r.ok)
  if (!r.ok) t.match(r.error, /^--pullable-registries: "https:\/\/x.corp": a registry host/)
})
