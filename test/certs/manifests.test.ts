import t from 'tap'
import { parse, parseAllDocuments } from 'yaml'
import { caBundlePatch } from '../../src/certs/live.js'
import { caBundleOf, patchWebhookConfigYaml, secretManifest } from '../../src/certs/manifests.js'

const BUNDLE = caBundleOf('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')

const INSTALL = `# neverpull-guard install
apiVersion: v1
kind: Namespace
metadata:
  name: neverpull-system   # keep this comment
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: neverpull-guard
webhooks:
  - name: pods.neverpull.dev  # the pod hook
    admissionReviewVersions: ["v1"]
    sideEffects: None
    clientConfig:
      service: {name: neverpull-guard, namespace: neverpull-system, path: /validate}
      caBundle: "" # filled in by neverpull-guard certs
    rules:
      - operations: [CREATE]
        apiGroups: [""]
        apiVersions: [v1]
        resources: [pods]
  - name: workloads.neverpull.dev
    clientConfig:
      caBundle: OLDOLDOLD
      service:
        name: neverpull-guard
        namespace: neverpull-system
    sideEffects: None
---
# a config map that mentions caBundle: must stay
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
data:
  caBundle: untouched
`

t.test('every caBundle is replaced and nothing else changes', async (t) => {
  const result = patchWebhookConfigYaml(INSTALL, BUNDLE)
  t.same(result.patched, ['neverpull-guard/pods.neverpull.dev', 'neverpull-guard/workloads.neverpull.dev'])
  t.same(result.skipped, [])
  const expected = INSTALL.replace('caBundle: ""', `caBundle: "${BUNDLE}"`).replace(
    'caBundle: OLDOLDOLD',
    `caBundle: ${BUNDLE}`,
  )
  t.equal(result.text, expected, 'byte-identical apart from the two values (comments, flow style, quoting kept)')
  const docs = parseAllDocuments(result.text).map(
    (d) => d.toJS() as { webhooks?: Array<{ clientConfig: { caBundle?: string } }>; data?: Record<string, string> },
  )
  t.equal(docs.length, 3)
  t.equal(docs[1]?.webhooks?.[0]?.clientConfig.caBundle, BUNDLE)
  t.equal(docs[1]?.webhooks?.[1]?.clientConfig.caBundle, BUNDLE)
  t.equal(docs[2]?.data?.['caBundle'], 'untouched')
  t.equal(patchWebhookConfigYaml(result.text, BUNDLE).text, result.text, 'idempotent')
})

t.test('a missing or empty caBundle is added with the right indentation', async (t) => {
  const source = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: hooks
webhooks:
- name: a.example
  clientConfig:
    url: https://example.invalid/validate   # dev only
  rules: []
- name: b.example
  clientConfig:
    caBundle:
    url: https://b.invalid
- name: c.example
  clientConfig: {url: https://c.invalid }
- name: d.example
  clientConfig:
    service:
      name: d
      namespace: e`
  const result = patchWebhookConfigYaml(source, BUNDLE)
  t.equal(result.patched.length, 4)
  t.match(result.text, `    url: https://example.invalid/validate   # dev only\n    caBundle: ${BUNDLE}\n  rules: []`)
  t.match(result.text, `    caBundle: ${BUNDLE}\n    url: https://b.invalid`)
  t.match(result.text, `clientConfig: {url: https://c.invalid, caBundle: ${BUNDLE} }`)
  t.ok(result.text.endsWith(`      namespace: e\n    caBundle: ${BUNDLE}`))
  const doc = parse(result.text) as { webhooks: Array<{ clientConfig: Record<string, string> }> }
  for (const hook of doc.webhooks) t.equal(hook.clientConfig.caBundle, BUNDLE)
  t.equal(doc.webhooks[3]?.clientConfig.service !== undefined, true)
})

t.test(
  'webhooks without clientConfig are reported; the steering MutatingWebhookConfiguration is patched too',
  async (t) => {
    const source = `kind: ValidatingWebhookConfiguration
metadata: {name: broken}
webhooks:
  - name: no-client-config
---
kind: MutatingWebhookConfiguration
webhooks:
  - name: m
    clientConfig: {url: https://m}
`
    const result = patchWebhookConfigYaml(source, BUNDLE)
    t.same(result.patched, ['(unnamed)/m'])
    t.same(result.skipped, ['broken/no-client-config: has no clientConfig'])
    const docs = result.text
      .split('\n---\n')
      .map((d) => parse(d) as { webhooks: Array<{ clientConfig?: Record<string, string> }> })
    t.equal(docs[1]?.webhooks[0]?.clientConfig?.['caBundle'], BUNDLE)
    t.equal(docs[0]?.webhooks[0]?.clientConfig, undefined)
    const other = 'kind: ConfigMap\nwebhooks:\n  - name: x\n    clientConfig: {url: https://x}\n'
    t.same(patchWebhookConfigYaml(other, BUNDLE).patched, [], 'other kinds are left alone')
  },
)

t.test('invalid YAML is an error, not a rewrite', async (t) => {
  t.throws(
    () => patchWebhookConfigYaml('kind: ValidatingWebhookConfiguration\nwebhooks: [\n', BUNDLE),
    /not valid YAML/,
  )
})

t.test('the Secret manifest is a kubernetes.io/tls Secret with the three files', async (t) => {
  const text = secretManifest({ namespace: 'guard', cert: 'CERT\n', key: 'KEY\n', ca: 'CA\n' })
  t.same(parse(text), {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'neverpull-guard-tls', namespace: 'guard' },
    type: 'kubernetes.io/tls',
    data: {
      'tls.crt': Buffer.from('CERT\n').toString('base64'),
      'tls.key': Buffer.from('KEY\n').toString('base64'),
      'ca.crt': Buffer.from('CA\n').toString('base64'),
    },
  })
  const long = secretManifest({ namespace: 'guard', cert: 'x'.repeat(3000), key: 'k', ca: 'c' })
  t.match(long, new RegExp(`tls\\.crt: ${Buffer.from('x'.repeat(3000)).toString('base64')}\\n`), 'base64 is not folded')
})

t.test('the live JSON patch sets each caBundle and guards each index by name', async (t) => {
  t.same(caBundlePatch(['a', undefined], 'QQ=='), [
    { op: 'test', path: '/webhooks/0/name', value: 'a' },
    { op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: 'QQ==' },
    { op: 'add', path: '/webhooks/1/clientConfig/caBundle', value: 'QQ==' },
  ])
})
