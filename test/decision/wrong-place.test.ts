import t from 'tap'
import { decide, type Subject } from '../../src/decision/decide.js'
import { denialMessage } from '../../src/decision/messages.js'
import type { NodeImageSetImageElsewhere } from '../../src/api/types.js'
import type { ContainerFacts, PodTemplateFacts } from '../../src/workload/pod-template.js'
import { buildIndex, NOW, runtimeImage } from '../helpers/inventory.js'

// Images in the wrong place are a hint for the message, never presence.

const DIGEST = 'sha256:' + 'd'.repeat(64)
const index = buildIndex([
  { name: 'a1', labels: { zone: 'a' }, images: [] },
  { name: 'a2', labels: { zone: 'a' }, images: ['docker.io/library/app:1'] },
  { name: 'b1', labels: { zone: 'b' }, images: [] },
])
function elsewhere(node: string, images: NodeImageSetImageElsewhere[], own: string[] = []): void {
  index.upsertImages({ nodeName: node, images: own.map(runtimeImage), observedAt: NOW - 60_000, elsewhere: images })
}
elsewhere('a1', [{ name: 'docker.io/library/app:1', digest: DIGEST, containerdNamespace: 'default' }])
elsewhere('b1', [{ name: 'app:2', containerdNamespace: 'moby' }])

const never = (image: string): ContainerFacts => ({ kind: 'container', name: 'app', image, pullPolicy: 'Never' })
const tpl = (image: string, zone: string): PodTemplateFacts => ({
  kind: 'Pod',
  perNode: false,
  mirror: false,
  placement: { tolerations: [], nodeSelector: { zone } },
  containers: [never(image)],
})
const subject: Subject = { kind: 'Pod', namespace: 'default', name: 'web', operation: 'CREATE' }

t.test('the table', (t) => {
  const table: Array<[string, string, string, string, string[]]> = [
    ['held elsewhere on an eligible node that lacks it', 'app:1', 'a', 'partial', ['a1/default']],
    ['by the digest the name points to', `app@${DIGEST}`, 'a', 'missing', ['a1/default']],
    ['a raw containerd name is normalised', 'docker.io/library/app:2', 'b', 'missing', ['b1/moby']],
    ['not on an eligible node: not mentioned', 'app:2', 'a', 'missing', []],
    ['never counted as present', 'app:1', 'b', 'missing', []],
  ]
  for (const [name, image, zone, reason, wrong] of table) {
    const d = decide(index, { subject, template: tpl(image, zone), mode: 'enforce', now: NOW })
    const f = d.findings[0]!
    t.equal(f.reason, reason, `${name}: reason`)
    t.same(
      f.wrongPlace.map((w) => `${w.node}/${w.namespace}`),
      wrong,
      `${name}: wrong place`,
    )
  }
  const d = decide(index, { subject, template: tpl('app:2', 'b'), mode: 'enforce', now: NOW })
  t.match(
    denialMessage(d, subject),
    'it is on b1 in containerd namespace "moby", where the kubelet does not look (only k8s.io)',
  )
  t.match(
    denialMessage(d, subject),
    'ctr -n moby images export image.tar app:2 && ctr -n k8s.io images import image.tar',
  )
  t.end()
})

t.test('a new list replaces the old; removing the image set forgets it', (t) => {
  elsewhere('b1', [], ['docker.io/library/app:2'])
  t.equal(index.imagesElsewhere('docker.io/library/app:2'), undefined)
  t.equal(decide(index, { subject, template: tpl('app:2', 'b'), mode: 'enforce', now: NOW }).verdict, 'allow')
  index.removeImages('a1')
  t.equal(index.imagesElsewhere('docker.io/library/app:1'), undefined)
  t.end()
})

t.test('explain pod names the node, the containerd namespace and the commands', async (t) => {
  const { explainPod } = await import('../../src/inspect/explain.js')
  const { buildIndex: build } = await import('../helpers/inventory.js')
  const view = build([{ name: 'n1', images: [] }])
  view.upsertImages({
    nodeName: 'n1',
    images: [],
    observedAt: NOW - 60_000,
    elsewhere: [{ name: 'docker.io/library/app:3', containerdNamespace: 'default' }],
  })
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'default' },
    spec: { nodeName: 'n1', containers: [{ name: 'app', image: 'app:3', imagePullPolicy: 'Never' }] },
    status: {
      phase: 'Pending',
      containerStatuses: [{ name: 'app', state: { waiting: { reason: 'ErrImageNeverPull' } } }],
    },
  }
  const text = explainPod(pod, view, NOW)
  t.match(
    text,
    'n1 holds it as docker.io/library/app:3 in containerd namespace "default", where the kubelet does not look (only k8s.io)',
  )
  t.match(
    text,
    'fix: on n1: ctr -n default images export image.tar docker.io/library/app:3 && ctr -n k8s.io images import image.tar',
  )
})
