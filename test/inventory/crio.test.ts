import t from 'tap'
import { decide } from '../../src/decision/decide.js'
import { denialMessage, warningsFor } from '../../src/decision/messages.js'
import { lookupKey } from '../../src/image/reference.js'
import type { NodeImages, RuntimeInfo } from '../../src/api/types.js'
import type { PodTemplateFacts } from '../../src/workload/pod-template.js'
import { toNodeImages } from '../../src/inventory/convert.js'
import { buildIndex, NOW, runtimeImage } from '../helpers/inventory.js'

// The webhook resolves per node by runtime (issue 10 item 2): containerd nodes as the
// containerd CRI does (docker.io implied), CRI-O nodes through their published search
// registries and aliases (src/image/crio.ts cites the upstream functions).

const crio = (extra: Partial<RuntimeInfo> = {}): RuntimeInfo => ({
  name: 'cri-o',
  version: '1.30.0',
  endpoint: 'unix:///var/run/crio/crio.sock',
  ...extra,
})
const containerd: RuntimeInfo = {
  name: 'containerd',
  version: '1.7.22',
  endpoint: 'unix:///run/containerd/containerd.sock',
}

function set(nodeName: string, runtime: RuntimeInfo | undefined, refs: string[]): NodeImages {
  return {
    nodeName,
    images: refs.map(runtimeImage),
    observedAt: NOW - 1000,
    ...(runtime === undefined ? {} : { runtime }),
  }
}

function cluster() {
  const index = buildIndex([{ name: 'ctrd' }, { name: 'crio-quay' }, { name: 'crio-hub' }, { name: 'crio-unknown' }])
  index.upsertImages(set('ctrd', containerd, ['docker.io/me/app:1', 'docker.io/library/myapp:dev']))
  index.upsertImages(
    set('crio-quay', crio({ unqualifiedSearchRegistries: ['quay.io'], shortNameAliases: { tool: 'ghcr.io/o/tool' } }), [
      'quay.io/me/app:1',
      'localhost/myapp:dev',
      'ghcr.io/o/tool:2',
    ]),
  )
  index.upsertImages(
    set('crio-hub', crio({ unqualifiedSearchRegistries: ['quay.io', 'docker.io'] }), [
      'docker.io/library/myapp:dev',
      'docker.io/library/sha256:' + 'b'.repeat(64),
    ]),
  )
  index.upsertImages(set('crio-unknown', crio(), ['quay.io/me/app:1']))
  return index
}

function nodes(
  index: ReturnType<typeof cluster>,
  image: string,
  which: 'resolving' | 'unsure' = 'resolving',
): string[] {
  const k = lookupKey(image)
  if (!k.ok) return []
  const out: string[] = []
  ;(which === 'resolving' ? index.nodesResolving(k) : index.nodesUnsure(k))?.forEach((s) => out.push(index.nameOf(s)))
  return out.sort()
}

t.test('per node, by runtime', async (t) => {
  const index = cluster()
  t.same(
    nodes(index, 'me/app:1'),
    ['crio-quay', 'ctrd'],
    'quay.io/me/app:1 on the quay-searching CRI-O node (was a false deny); docker.io on containerd',
  )
  t.same(
    nodes(index, 'myapp:dev'),
    ['crio-hub', 'ctrd'],
    'not localhost/, and docker.io only where it is a search registry (was a false allow)',
  )
  t.same(nodes(index, 'tool:2'), ['crio-quay'], 'an alias')
  t.same(nodes(index, 'sha256:' + 'b'.repeat(64)), ['crio-hub'], 'sha256:<hex> is a short name on CRI-O, not an ID')
  t.same(nodes(index, 'quay.io/me/app:1'), ['crio-quay', 'crio-unknown'], 'qualified names need no configuration')
  t.same(nodes(index, 'me/app:1', 'unsure'), ['crio-unknown'], 'no published configuration: unknown for short names')
  t.same(nodes(index, 'quay.io/me/app:1', 'unsure'), [])
})

t.test('the decision: unknown is a warning, the localhost spelling a suggestion', async (t) => {
  const index = cluster()
  const run = (image: string, nodeName: string) =>
    decide(index, {
      subject: { kind: 'Pod', namespace: 'default', name: 'p', operation: 'CREATE' },
      template: {
        kind: 'Pod',
        perNode: false,
        mirror: false,
        placement: { tolerations: [], nodeName },
        containers: [{ kind: 'container', name: 'c', image, pullPolicy: 'Never' }],
      },
      mode: 'enforce',
      now: NOW,
    })
  t.equal(run('me/app:1', 'crio-quay').verdict, 'allow')
  const local = run('myapp:dev', 'crio-quay')
  t.equal(local.verdict, 'deny', 'CRI-O does not look in localhost/ for a short name')
  t.equal(local.findings[0]?.suggestions[0], 'localhost/myapp:dev', 'did you mean localhost/myapp:dev')
  const unsure = run('me/app:1', 'crio-unknown')
  t.equal(unsure.verdict, 'warn', 'never deny on a configuration we do not know')
  t.equal(unsure.findings[0]?.reason, 'unknown')
})

t.test('a node leaving CRI-O, or its configuration changing, moves it', async (t) => {
  const index = cluster()
  index.upsertImages(set('crio-unknown', crio({ unqualifiedSearchRegistries: ['quay.io'] }), ['quay.io/me/app:1']))
  t.same(nodes(index, 'me/app:1'), ['crio-quay', 'crio-unknown', 'ctrd'])
  index.upsertImages(set('crio-quay', containerd, ['quay.io/me/app:1']))
  t.same(nodes(index, 'me/app:1'), ['crio-unknown', 'ctrd'], 'now containerd: docker.io/me/app:1, which it lacks')
  for (const n of ['crio-unknown', 'crio-hub']) index.removeImages(n)
  const k = lookupKey('docker.io/me/app:1')
  t.equal(
    k.ok && index.nodesResolving(k),
    index.nodesWithImage('docker.io/me/app:1'),
    'no CRI-O node left: the plain key index again',
  )
})

t.test('the NodeImageSet fields are read and checked', async (t) => {
  const obj = {
    apiVersion: 'neverpull.dev/v1alpha1',
    kind: 'NodeImageSet',
    metadata: { name: 'n' },
    spec: {
      nodeName: 'n',
      runtime: { name: 'cri-o', unqualifiedSearchRegistries: ['quay.io'], shortNameAliases: { a: 'quay.io/x/a' } },
      images: [],
    },
  }
  const r = toNodeImages(obj)
  t.ok(
    r.ok &&
      r.value.runtime?.unqualifiedSearchRegistries?.[0] === 'quay.io' &&
      r.value.runtime.shortNameAliases?.['a'] === 'quay.io/x/a',
  )
  const bad = toNodeImages({
    ...obj,
    spec: { ...obj.spec, runtime: { name: 'cri-o', unqualifiedSearchRegistries: 'quay.io' } },
  })
  t.notOk(bad.ok, 'a string where a list belongs is refused')
})

t.test('mixed clusters: the index agrees with asking each node on its own', async (t) => {
  // A small deterministic generator: 130 nodes (past the first capacity, so bitsets widen),
  // runtimes and configurations mixed, images from a few registries.
  let seed = 42
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed % n
  }
  const configs: Array<RuntimeInfo> = [
    containerd,
    crio({ unqualifiedSearchRegistries: ['quay.io'] }),
    crio({ unqualifiedSearchRegistries: ['quay.io', 'docker.io'], shortNameAliases: { tool: 'ghcr.io/o/tool' } }),
    crio(),
  ]
  const pool = [
    'docker.io/me/app:1',
    'quay.io/me/app:1',
    'docker.io/library/myapp:dev',
    'quay.io/myapp:dev',
    'localhost/myapp:dev',
    'ghcr.io/o/tool:2',
    'docker.io/library/tool:2',
  ]
  const index = buildIndex([])
  const truth = new Map<string, { runtime: RuntimeInfo; refs: Set<string> }>()
  for (let n = 0; n < 130; n++) {
    const runtime = configs[rand(configs.length)]!
    const refs = pool.filter(() => rand(3) === 0)
    index.upsertImages(set(`n${n}`, runtime, refs))
    truth.set(`n${n}`, { runtime, refs: new Set(refs) })
  }
  // Some nodes change runtime or go away.
  for (let n = 0; n < 20; n++) {
    const name = `n${rand(130)}`
    if (rand(2) === 0) {
      index.removeImages(name)
      truth.delete(name)
    } else {
      const runtime = configs[rand(configs.length)]!
      const refs = pool.filter(() => rand(2) === 0)
      index.upsertImages(set(name, runtime, refs))
      truth.set(name, { runtime, refs: new Set(refs) })
    }
  }
  const { crioCandidateKeys } = await import('../../src/image/crio.js')
  for (const image of ['me/app:1', 'myapp:dev', 'tool:2', 'quay.io/me/app:1', 'localhost/myapp:dev', 'nope:1']) {
    const k = lookupKey(image)
    if (!k.ok) throw new Error(image)
    const want: string[] = []
    const unsure: string[] = []
    for (const [name, node] of truth) {
      if (node.runtime.name !== 'cri-o') {
        if (node.refs.has(k.key)) want.push(name)
        continue
      }
      const c = crioCandidateKeys(
        image,
        node.runtime.unqualifiedSearchRegistries === undefined
          ? undefined
          : {
              unqualifiedSearchRegistries: node.runtime.unqualifiedSearchRegistries,
              shortNameAliases: node.runtime.shortNameAliases ?? {},
            },
      )
      if (c.keys.some((key) => node.refs.has(key))) want.push(name)
      if (node.runtime.unqualifiedSearchRegistries === undefined && c.short) unsure.push(name)
    }
    const got: string[] = []
    index.nodesResolving(k)?.forEach((s) => got.push(index.nameOf(s)))
    t.same(got.sort(), want.sort(), `${image}: ${want.length} nodes`)
    const gotUnsure: string[] = []
    index.nodesUnsure(k)?.forEach((s) => gotUnsure.push(index.nameOf(s)))
    t.same(gotUnsure.sort(), unsure.sort(), `${image}: ${unsure.length} unsure`)
  }
})

t.test(
  'the fix names the way to load an image on the nodes that lack it: podman on CRI-O, ctr elsewhere',
  async (t) => {
    const subject = { kind: 'Pod', namespace: 'default', name: 'web', operation: 'CREATE' }
    const template = (image: string): PodTemplateFacts => ({
      kind: 'Pod',
      perNode: false,
      mirror: false,
      placement: { tolerations: [] },
      containers: [{ kind: 'container', name: 'app', image, pullPolicy: 'Never' }],
    })
    const run = (names: Array<[string, RuntimeInfo]>, image: string) => {
      const index = buildIndex(names.map(([name]) => ({ name })))
      for (const [name, runtime] of names) index.upsertImages(set(name, runtime, ['docker.io/library/other:1']))
      return decide(index, { subject, template: template(image), mode: 'enforce', now: NOW })
    }
    const hub = crio({ unqualifiedSearchRegistries: ['docker.io'] })
    let d = run(
      [
        ['c1', hub],
        ['c2', hub],
      ],
      'docker.io/library/app:1',
    )
    t.equal(d.verdict, 'deny')
    let msg = denialMessage(d, subject)
    t.match(msg, /podman load -i IMAGE\.tar/, 'CRI-O nodes: podman')
    t.notMatch(msg, /ctr -n k8s\.io images import/, 'no containerd command for a CRI-O-only cluster')
    d = run(
      [
        ['c1', hub],
        ['k1', containerd],
      ],
      'docker.io/library/app:1',
    )
    msg = denialMessage(d, subject)
    t.match(msg, /podman load/, 'mixed: both')
    t.match(msg, /ctr -n k8s\.io images import/)
    d = run(
      [
        ['k1', containerd],
        ['k2', containerd],
      ],
      'docker.io/library/app:1',
    )
    t.notMatch(denialMessage(d, subject), /podman/, 'containerd only: no podman')
    const warned = decide(buildIndexWarn(), {
      subject,
      template: template('docker.io/library/app:1'),
      mode: 'warn',
      now: NOW,
    })
    t.match(
      warningsFor(warned, subject)[0],
      /podman load -i IMAGE\.tar as root on each CRI-O node/,
      'the warning fix line too',
    )
    function buildIndexWarn() {
      const index = buildIndex([{ name: 'c1' }])
      index.upsertImages(set('c1', hub, ['docker.io/library/other:1']))
      return index
    }
  },
)
