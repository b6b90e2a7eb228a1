import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { stringify } from 'yaml'
import t from 'tap'
import { runWhere } from '../../src/inspect/command.js'
import { explainPod } from '../../src/inspect/explain.js'
import { renderWhere, whereIs } from '../../src/inspect/where.js'
import { exampleInventory, review } from '../helpers/fixtures.js'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'

const now = Date.now()
const inventory = exampleInventory(now)

t.test('where: every reference form finds the same nodes', async (t) => {
  for (const image of ['myapp:1.0', 'docker.io/library/myapp:1.0', 'index.docker.io/library/myapp:1.0']) {
    const r = whereIs(inventory, image, now)
    t.same(
      r.rows.filter((x) => x.presence === 'present').map((x) => x.node),
      ['node-a', 'node-b'],
      image,
    )
  }
  const r = whereIs(inventory, 'myapp:2.0', now)
  t.equal(r.present, 0)
  t.equal(r.absent, 3)
  t.same(r.rows.find((x) => x.node === 'node-a')?.sameRepository, ['myapp:1.0', 'myapp:dev'])
  const text = renderWhere(r, now)
  t.match(text, /^myapp:2.0 is looked up as docker.io\/library\/myapp:2.0$/m)
  t.match(text, /^NODE +IMAGE +IMAGE LIST OBSERVED +SAME REPOSITORY$/m)
  t.match(text, /^node-a +absent +0s ago +myapp:1.0, myapp:dev$/m)
  t.match(text, /^present on 0 of 3 nodes$/m)
})

t.test('where: by digest and by image id; invalid references; stale lists', async (t) => {
  const digest = whereIs(
    inventory,
    'agent@sha256:4b0f4c6f8bb5e7f7f4b6d0c93a6f51b7c1e1d6a3b5b2b2f0ad2ec0f6e5c3d9a1',
    now,
  )
  t.equal(digest.present, 2)
  const bad = whereIs(inventory, 'Bad:Ref', now)
  t.match(bad.error, /invalid reference/)
  const stale = whereIs(inventory, 'myapp:2.0', now + 60 * 60_000)
  t.equal(stale.unknown, 3, 'old lists are unknown, not absent')
  t.match(renderWhere(stale, now + 60 * 60_000), /3 without a current image list \(unknown, not absent\)/)
  t.match(renderWhere(whereIs(new InventoryIndex({ staleAfterMs: 1 }), 'x', now), now), /no nodes in the inventory/)
})

t.test('explain: a pod stuck in ErrImageNeverPull on node-b', async (t) => {
  const pod = review('pod-create-generatename')['request'].object
  pod.spec.nodeName = 'node-b'
  pod.status = {
    phase: 'Pending',
    containerStatuses: [
      {
        name: 'c',
        state: {
          waiting: {
            reason: 'ErrImageNeverPull',
            message: 'Container image "myapp:dev" is not present with pull policy of Never',
          },
        },
      },
    ],
  }
  const text = explainPod(pod, inventory, now)
  t.match(text, /^Pod default\/gen-cvzv2: on node node-b, phase Pending$/m)
  t.match(text, /container "c": image myapp:dev \(looked up as docker.io\/library\/myapp:dev\), imagePullPolicy: Never/)
  t.match(text, /state: waiting, ErrImageNeverPull: Container image "myapp:dev" is not present/)
  t.match(text, /on node-b: NOT present \(image list observed 0s ago\)/)
  t.match(text, /node-b has myapp:1.0 of the same repository/)
  t.match(text, /elsewhere: node-a/)
  t.match(text, /kind load docker-image myapp:dev --nodes node-b/)
  t.match(text, /nodeSelector kubernetes.io\/hostname: node-a/)
  t.match(text, /did you mean myapp:1.0\?/)
})

t.test('explain: unscheduled pods, pods without Never, unknown nodes', async (t) => {
  const pod = review('pod-create-generatename')['request'].object
  t.match(explainPod(pod, inventory, now), /not scheduled yet[\s\S]*is on 1 of 2 eligible nodes \(node-a\)/)
  pod.spec.containers[0].imagePullPolicy = 'IfNotPresent'
  t.match(explainPod(pod, inventory, now), /No container uses imagePullPolicy: Never/)
  pod.spec.containers[0].imagePullPolicy = 'Never'
  pod.spec.nodeName = 'ghost'
  t.match(explainPod(pod, inventory, now), /node ghost: not in the inventory/)
})

t.test('the where and explain commands', async (t) => {
  const run = (args: string[], input?: string) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { encoding: 'utf8', input })
  let r = run(['where', 'myapp:dev', '--inventory-file', 'examples/inventory.yaml', '-o', 'json'])
  t.equal(r.status, 0)
  const json = JSON.parse(r.stdout) as { key: string; present: number }
  t.equal(json.key, 'docker.io/library/myapp:dev')
  t.equal(json.present, 1)
  r = run(['where', '--inventory-file', 'examples/inventory.yaml'])
  t.equal(r.status, 2)
  t.match(r.stderr, /give exactly one IMAGE/)
  const pod = JSON.stringify({
    ...review('pod-create-generatename')['request'].object,
    spec: { ...review('pod-create-generatename')['request'].object.spec, nodeName: 'node-b' },
  })
  r = run(['explain', '-f', '-', '--inventory-file', 'examples/inventory.yaml'], pod)
  t.equal(r.status, 0)
  t.match(r.stdout, /on node-b: NOT present/)
  r = run(['explain', 'deployment', 'x', '--inventory-file', 'examples/inventory.yaml'])
  t.equal(r.status, 2)
  t.match(r.stderr, /expected: explain pod NAME/)
})

t.test(
  'where on a kubectl snapshot of a 1.19 cluster: the Node with "names": null is used, an odd field is named on stderr',
  async (t) => {
    const node = JSON.parse(
      readFileSync(new URL('../fixtures/kubelet-1.19/node-1.19-kubelet.json', import.meta.url), 'utf8'),
    ) as { status: { images: Array<{ names: unknown }> } }
    const odd = structuredClone(node) as typeof node & { metadata: { name: string; labels: Record<string, string> } }
    odd.metadata.name = 'np-node-2'
    odd.metadata.labels['kubernetes.io/hostname'] = 'np-node-2'
    odd.status.images[0]!.names = 'docker.io/library/neverpull-guard:dev'
    const dir = await mkdtemp(join(tmpdir(), 'neverpull-where-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const file = join(dir, 'cluster.yaml')
    await writeFile(file, stringify({ apiVersion: 'v1', kind: 'List', items: [node, odd] }))
    const out: string[] = []
    const err: string[] = []
    const sink = (into: string[]) =>
      new Writable({ write: (chunk: Buffer, _enc, done) => (into.push(chunk.toString()), done()) })
    const code = await runWhere(['myapp:1.0', '--inventory-file', file, '-o', 'json'], {
      stdout: sink(out),
      stderr: sink(err),
      stdin: () => Promise.resolve(''),
      now: () => now,
    })
    t.equal(code, 0)
    const report = JSON.parse(out.join('')) as { present: number; rows: Array<{ node: string; presence: string }> }
    t.equal(report.present, 2, 'both nodes prove myapp:1.0 by status.images (no NodeImageSet in the snapshot)')
    t.equal(
      err.join(''),
      `${file}: object 2 (Node np-node-2): status.images[0].names is a string, not a list; left out\n`,
    )
  },
)

t.test('explain: a pod that names a RuntimeClass says what the apiserver merged', async (t) => {
  const view = exampleInventory(now)
  const pod = review('pod-create-generatename')['request'].object
  pod.spec.runtimeClassName = 'gvisor'
  t.match(explainPod(pod, view, now), /^RuntimeClass gvisor is not in the inventory$/m)
  view.upsertRuntimeClass({ name: 'gvisor', handler: 'runsc', nodeSelector: { zone: 'a' }, tolerations: [] })
  view.setRuntimeClassesComplete(true)
  t.match(
    explainPod(pod, view, now),
    /^RuntimeClass gvisor \(handler runsc\): the apiserver merged its nodeSelector and tolerations into this pod$/m,
  )
  pod.spec.runtimeClassName = 'kata'
  t.match(explainPod(pod, view, now), /^RuntimeClass kata does not exist now: new pods naming it are rejected$/m)
})

// A RuntimeClass's pods run only where its scheduling.nodeSelector matches (the RuntimeClass
// admission plugin merges it, plugin/pkg/admission/runtimeclass/admission.go setScheduling).
t.test('where --runtime-class: only the nodes that RuntimeClass selects', async (t) => {
  const view = exampleInventory(now)
  view.upsertRuntimeClass({ name: 'gpu', handler: 'nvidia', nodeSelector: { accelerator: 'nvidia' }, tolerations: [] })
  view.setRuntimeClassesComplete(true)
  const r = whereIs(view, 'busybox:1.36', now, { runtimeClass: 'gpu' })
  t.same(
    r.rows.map((x) => x.node),
    ['node-c'],
    'node-c is the only nvidia node',
  )
  t.match(renderWhere(r, now), /^nodes for RuntimeClass gpu \(nodeSelector accelerator=nvidia\) only$/m)
  t.match(whereIs(view, 'busybox:1.36', now, { runtimeClass: 'kata' }).error, /^RuntimeClass kata does not exist$/)
  const out: string[] = []
  const io = {
    stdout: new Writable({ write: (c, _e, cb) => (out.push(String(c)), cb()) }),
    stderr: new Writable({ write: (_c, _e, cb) => cb() }),
    stdin: async () => '',
    now: () => now,
  }
  const dir = await mkdtemp(join(tmpdir(), 'where-rc-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'inv.yaml')
  await writeFile(
    file,
    readFileSync(new URL('../../examples/inventory.yaml', import.meta.url), 'utf8') +
      '\n---\napiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: gpu}\nhandler: nvidia\nscheduling: {nodeSelector: {accelerator: nvidia}}\n',
  )
  t.equal(await runWhere(['busybox:1.36', '--runtime-class', 'gpu', '--inventory-file', file], io), 0)
  t.match(out.join(''), /nodes for RuntimeClass gpu[\s\S]*node-c[\s\S]*present on 1 of 1 node/)
})
