import { request } from 'node:https'
import { setTimeout as sleep } from 'node:timers/promises'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createAgent } from '../../src/agent/agent.js'
import { connectCri } from '../../src/agent/cri.js'
import { createKubePublisher } from '../../src/agent/publish.js'
import { webhookConfig } from '../../src/config/webhook.js'
import { startWebhook } from '../../src/server/server.js'
import { containerdSkipReason, startContainerd } from '../helpers/containerd.js'
import { startFakeApiServer } from '../helpers/fake-apiserver.js'
import { review } from '../helpers/fixtures.js'
import type { AdmissionReviewReply } from '../../src/admission/review.js'
import { writeOciImage } from '../helpers/oci.js'
import { localCertificates } from '../helpers/local-webhook.js'
import { localWebhookArgs } from '../helpers/webhook-args.js'

// The whole pipeline with default settings: an image imported into a real containerd, the
// agent (10 s interval) publishes the node's NodeImageSet to an API server, the webhook's
// watch picks it up, and a Never pod bound to that node is allowed; the image removed, it
// is denied. The delay from import to decision is the freshness a person waits for.

const skip = await containerdSkipReason()
const IMAGE = 'docker.io/neverpull/e2e:1'

function post(url: string, ca: string, body: unknown): Promise<{ allowed: boolean; message: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/validate`,
      { method: 'POST', ca, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = ''
        res.on('data', (c: Buffer) => (text += c.toString()))
        res.on('end', () => {
          const r = (JSON.parse(text) as AdmissionReviewReply).response
          resolve({ allowed: r.allowed, message: r.status?.message ?? '' })
        })
      },
    )
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

async function until(what: string, fn: () => Promise<boolean>, ms: number): Promise<number> {
  const start = Date.now()
  while (!(await fn())) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(100)
  }
  return Date.now() - start
}

t.test(
  'containerd -> agent -> NodeImageSet -> webhook watch -> decision',
  { skip: skip ?? false, timeout: 120_000 },
  async (t) => {
    const ctrd = await startContainerd()
    t.teardown(() => ctrd.cleanup())
    const image = await writeOciImage(ctrd.dir, 'e2e.tar', { names: [IMAGE], content: 'e2e' })

    const api = await startFakeApiServer()
    t.teardown(() => api.close())
    api.put({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'node-a', uid: 'uid-node-a', labels: { 'kubernetes.io/hostname': 'node-a' } },
      status: { conditions: [{ type: 'Ready', status: 'True' }] },
    })
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } })

    const cri = connectCri(ctrd.endpoint)
    t.teardown(() => cri.close())
    const agent = createAgent({
      nodeName: 'node-a',
      cri,
      publisher: createKubePublisher(api.kubeConfig(), { nodeName: 'node-a' }),
    })
    const agentDone = agent.run()
    t.teardown(async () => {
      await agent.stop()
      await agentDone
    })

    const dir = await mkdtemp(join(tmpdir(), 'neverpull-e2e-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    await localCertificates(dir)
    await writeFile(join(dir, 'kubeconfig'), api.kubeConfig().exportConfig())
    const parsed = webhookConfig(
      localWebhookArgs({
        tls: { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') },
        inventoryFile: null,
        logLevel: 'silent',
        args: ['--kubeconfig', join(dir, 'kubeconfig'), '--audit-interval', '0'],
      }),
      {},
    )
    if (!parsed.ok) throw new Error(parsed.error)
    const webhook = await startWebhook(parsed.config)
    t.teardown(() => webhook.shutdown())
    const ca = await readFile(join(dir, 'ca.crt'), 'utf8')
    const url = webhook.url.replace('localhost', '127.0.0.1')

    const body = review('pod-create-generatename')
    body['request'].object.spec.nodeName = 'node-a'
    body['request'].object.spec.containers[0].image = IMAGE

    await until('the agent to publish node-a', async () => webhook.inventory.imageSetCount === 1, 30_000)
    const first = await post(url, ca, body)
    t.equal(first.allowed, false, 'image not on the node: denied')
    t.match(
      first.message,
      /image "docker.io\/neverpull\/e2e:1" \(imagePullPolicy: Never\) is not on the only eligible node \(node-a\)/,
    )

    await ctrd.importImage(image.path)
    const loadDelay = await until(
      'the import to reach the decision',
      async () => (await post(url, ca, body)).allowed,
      40_000,
    )
    t.comment(`freshness: import -> allowed in ${(loadDelay / 1000).toFixed(1)} s (agent interval 10 s)`)
    // Two agent intervals and slack for a busy machine: a missed publish would take a third.
    t.ok(loadDelay <= 25_000, `import reached the decision within 25 s (${loadDelay} ms)`)

    type Published = {
      metadata: { ownerReferences?: Array<{ kind: string; uid: string }> }
      status?: { imageCount?: number }
    }
    const published = (): Published => api.get('neverpull.dev/v1alpha1', 'NodeImageSet', 'node-a') as Published
    t.match(published().metadata.ownerReferences, [{ kind: 'Node', uid: 'uid-node-a' }], 'owned by its Node')
    // The agent applies the status in a request of its own after the spec, which is what
    // the decision reads: the status may still be on its way.
    await until('the status to count the image', async () => published().status?.imageCount === 1, 10_000)
    t.equal(published().status?.imageCount, 1)

    await ctrd.removeImage(IMAGE)
    await ctrd.removeImage(image.configDigest)
    const removeDelay = await until(
      'the removal to reach the decision',
      async () => !(await post(url, ca, body)).allowed,
      40_000,
    )
    t.comment(`freshness: removal -> denied in ${(removeDelay / 1000).toFixed(1)} s`)
    t.ok(removeDelay <= 25_000, `removal reached the decision within 25 s (${removeDelay} ms)`)
  },
)
