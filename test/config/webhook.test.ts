import t from 'tap'
import { webhookConfig } from '../../src/config/webhook.js'

t.test('--pullable-registries and NEVERPULL_PULLABLE_REGISTRIES', (t) => {
  const base = ['--tls-cert', 'c', '--tls-key', 'k']
  let r = webhookConfig(base, {})
  t.ok(r.ok && r.config.pullableRegistries.any, 'default * changes nothing')
  r = webhookConfig(base, { NEVERPULL_PULLABLE_REGISTRIES: '' })
  t.ok(r.ok && r.config.pullableRegistries.any, 'an empty variable is unset, never "no registry"')
  r = webhookConfig(base, { NEVERPULL_PULLABLE_REGISTRIES: 'registry.corp:5000' })
  t.ok(r.ok && [...r.config.pullableRegistries.hosts].join() === 'registry.corp:5000', 'from the environment')
  r = webhookConfig([...base, '--pullable-registries', 'localhost,index.docker.io'], {
    NEVERPULL_PULLABLE_REGISTRIES: 'x.corp',
  })
  t.ok(r.ok && [...r.config.pullableRegistries.hosts].join() === 'localhost,docker.io', 'the flag wins, normalised')
  r = webhookConfig([...base, '--pullable-registries', 'https://x.corp'], {})
  t.notOk(r.ok)
  if (!r.ok) t.match(r.error, /^--pullable-registries: "https:\/\/x.corp": a registry host/)
  t.end()
})

t.test("the kubelets' image GC settings", (t) => {
  const base = ['--tls-cert', 'c', '--tls-key', 'k']
  let r = webhookConfig(base, {})
  t.ok(r.ok)
  if (r.ok)
    t.same(
      r.config.imageGc,
      { highThresholdPercent: 85, lowThresholdPercent: 80, maximumAgeMs: 0 },
      "the kubelet's defaults",
    )
  r = webhookConfig(
    [...base, '--image-gc-high-threshold', '90', '--image-gc-low-threshold', '70', '--image-maximum-gc-age', '168h'],
    {},
  )
  t.ok(r.ok)
  if (r.ok)
    t.same(r.config.imageGc, { highThresholdPercent: 90, lowThresholdPercent: 70, maximumAgeMs: 168 * 3600_000 })
  r = webhookConfig(base, { NEVERPULL_IMAGE_GC_HIGH_THRESHOLD: '95' })
  t.ok(r.ok && r.config.imageGc.highThresholdPercent === 95, 'from the environment')
  r = webhookConfig([...base, '--image-gc-high-threshold', '101'], {})
  t.notOk(r.ok, 'a percentage above 100 is refused')
  r = webhookConfig([...base, '--image-gc-high-threshold', '70'], {})
  t.notOk(r.ok, 'low above high is refused, as the kubelet does')
  if (!r.ok) t.match(r.error, /--image-gc-low-threshold \(80\) must not be above --image-gc-high-threshold \(70\)/)
  t.end()
})
