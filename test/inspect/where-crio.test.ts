import t from 'tap'
import type { RuntimeInfo } from '../../src/api/types.js'
import { explainPod } from '../../src/inspect/explain.js'
import { renderWhere, whereIs } from '../../src/inspect/where.js'
import { buildIndex, NOW, runtimeImage } from '../helpers/inventory.js'

// where and explain say how each node's runtime looks the image up (issue 10 items 2 and 3).

const crio = (extra: Partial<RuntimeInfo> = {}): RuntimeInfo => ({
  name: 'cri-o',
  version: '1.30.0',
  endpoint: 'unix:///var/run/crio/crio.sock',
  ...extra,
})

function cluster() {
  const index = buildIndex([{ name: 'ctrd' }, { name: 'crio-a' }, { name: 'crio-b' }, { name: 'crio-none' }])
  const put = (nodeName: string, runtime: RuntimeInfo | undefined, refs: string[]) =>
    index.upsertImages({
      nodeName,
      images: refs.map(runtimeImage),
      observedAt: NOW - 1000,
      ...(runtime === undefined ? {} : { runtime }),
    })
  put('ctrd', { name: 'containerd', version: '1.7', endpoint: 'x' }, ['docker.io/me/app:1'])
  put('crio-a', crio({ unqualifiedSearchRegistries: ['quay.io', 'docker.io'] }), ['quay.io/me/app:1'])
  put('crio-b', crio({ unqualifiedSearchRegistries: [] }), ['quay.io/me/app:1'])
  put('crio-none', crio(), [])
  return index
}

t.test('where: one line per way of looking it up', async (t) => {
  const index = cluster()
  const report = whereIs(index, 'me/app:1', NOW)
  const text = renderWhere(report, NOW)
  t.match(text, /^me\/app:1 is looked up as docker\.io\/me\/app:1$/m)
  t.match(text, /^ {2}on 1 node: quay\.io\/me\/app:1, then docker\.io\/me\/app:1$/m)
  t.match(text, /^ {2}on 1 node: nothing: no unqualified-search registry and no alias for this short name$/m)
  t.match(
    text,
    /^ {2}on 1 node: unknown \(its runtime resolves short names through a registries\.conf the agent did not publish\)$/m,
  )
  t.same(
    report.rows
      .filter((r) => r.presence === 'present')
      .map((r) => r.node)
      .sort(),
    ['crio-a', 'ctrd'],
  )
  t.notMatch(
    renderWhere(whereIs(index, 'quay.io/me/app:1', NOW), NOW),
    /on \d+ node/,
    'a qualified name is looked up the same everywhere',
  )
})

t.test('explain: the node’s own lookup', async (t) => {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'default' },
    spec: { nodeName: 'crio-a', containers: [{ name: 'c', image: 'me/app:2', imagePullPolicy: 'Never' }] },
  }
  const text = explainPod(pod, cluster(), NOW)
  t.match(
    text,
    /container "c": image me\/app:2 \(looked up on crio-a as quay\.io\/me\/app:2, then docker\.io\/me\/app:2\), imagePullPolicy: Never/,
  )
})
