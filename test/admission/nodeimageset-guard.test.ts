import t from 'tap'
import {
  DEFAULT_NODE_IMAGE_SET_POLICY,
  guardNodeImageSetWrite,
  NODE_NAME_EXTRA,
  type NodeImageSetPolicy,
} from '../../src/admission/nodeimageset-guard.js'
import { parseServiceAccount, webhookConfig } from '../../src/config/webhook.js'
import { review, reviewWith, type FixtureNodeImageSet, type FixtureReview } from '../helpers/fixtures.js'

const policy = DEFAULT_NODE_IMAGE_SET_POLICY
const AGENT = 'system:serviceaccount:neverpull-system:neverpull-guard-agent'
const SA_GROUPS = ['system:serviceaccounts', 'system:serviceaccounts:neverpull-system', 'system:authenticated']

/** userInfo of the agent as a 1.30+ apiserver reports a pod-bound projected token. */
function boundAgent(node: string) {
  return {
    username: AGENT,
    uid: '5b0c1bd1-7c0e-4a0e-9a1f-1d2b3c4d5e6f',
    groups: SA_GROUPS,
    extra: {
      'authentication.kubernetes.io/credential-id': ['JTI=7f3c2b1a-0d9e-4c8b-a7f6-e5d4c3b2a190'],
      [NODE_NAME_EXTRA]: [node],
      'authentication.kubernetes.io/node-uid': ['0c8a6e2e-3f43-4a55-8e0e-7c1c9b2d4f11'],
      'authentication.kubernetes.io/pod-name': [`neverpull-guard-agent-${node}`],
      'authentication.kubernetes.io/pod-uid': ['a7b0f0de-52f4-4f3a-9d0c-2b1e3c4d5f60'],
    },
  }
}

/** The same agent before 1.30: pod name and uid, but no node. */
const unboundAgent = {
  username: AGENT,
  uid: '5b0c1bd1-7c0e-4a0e-9a1f-1d2b3c4d5e6f',
  groups: SA_GROUPS,
  extra: {
    'authentication.kubernetes.io/pod-name': ['neverpull-guard-agent-x7k2p'],
    'authentication.kubernetes.io/pod-uid': ['a7b0f0de-52f4-4f3a-9d0c-2b1e3c4d5f60'],
  },
}

const jane = { username: 'jane@example.com', uid: 'jane', groups: ['developers', 'system:authenticated'] }
const admin = {
  username: 'kubernetes-admin',
  groups: ['kubeadm:cluster-admins', 'system:masters', 'system:authenticated'],
}

/** A NodeImageSet as the agent applies it and the apiserver stores it. */
function nodeImageSet(name: string, nodeName = name): FixtureNodeImageSet {
  return {
    apiVersion: 'neverpull.dev/v1alpha1',
    kind: 'NodeImageSet',
    metadata: {
      name,
      uid: '3d0c2b6a-1f4e-4a9b-8c7d-6e5f4a3b2c1d',
      resourceVersion: '48213',
      generation: 3,
      creationTimestamp: '2026-11-21T05:00:02Z',
      ownerReferences: [
        { apiVersion: 'v1', kind: 'Node', name: nodeName, uid: '0c8a6e2e-3f43-4a55-8e0e-7c1c9b2d4f11' },
      ],
      managedFields: [
        {
          manager: 'neverpull-guard-agent',
          operation: 'Apply',
          apiVersion: 'neverpull.dev/v1alpha1',
          fieldsType: 'FieldsV1',
          fieldsV1: { 'f:spec': { 'f:images': {}, 'f:nodeName': {}, 'f:runtime': {} } },
        },
      ],
    },
    spec: {
      nodeName,
      runtime: { name: 'containerd', version: 'v1.7.22', endpoint: 'unix:///run/containerd/containerd.sock' },
      images: [
        {
          id: 'sha256:4d1f0c5b0d0a4b8f9e3c2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d',
          repoTags: ['docker.io/library/myapp:dev'],
          repoDigests: [],
          size: 12582912,
          pinned: false,
        },
        {
          id: 'sha256:9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b',
          repoTags: ['registry.k8s.io/pause:3.10'],
          repoDigests: [
            'registry.k8s.io/pause@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a',
          ],
          size: 320368,
          pinned: true,
        },
      ],
    },
    status: { observedTime: '2026-11-21T05:59:50Z', imageCount: 2 },
  }
}

interface Write {
  operation?: 'CREATE' | 'UPDATE' | 'DELETE'
  subResource?: string
  userInfo: Record<string, unknown>
  object: FixtureNodeImageSet | null
  oldObject?: FixtureNodeImageSet | null
  dryRun?: boolean
}

/** A real AdmissionReview (the pod-create fixture) turned into a NodeImageSet write. */
function nisReview(w: Write): FixtureReview<FixtureNodeImageSet | null> {
  const body = reviewWith('pod-create', w.object, w.oldObject ?? null)
  const r = body['request']
  const operation = w.operation ?? 'CREATE'
  const gvk = { group: 'neverpull.dev', version: 'v1alpha1', kind: 'NodeImageSet' }
  const gvr = { group: 'neverpull.dev', version: 'v1alpha1', resource: 'nodeimagesets' }
  r.kind = gvk
  r.requestKind = gvk
  r.resource = gvr
  r.requestResource = gvr
  if (w.subResource !== undefined) {
    r.subResource = w.subResource
    r.requestSubResource = w.subResource
  }
  r.name = w.object?.metadata.name ?? w.oldObject?.metadata.name ?? ''
  delete r.namespace
  r.operation = operation
  r.userInfo = w.userInfo
  r.dryRun = w.dryRun ?? false
  r.options =
    operation === 'UPDATE'
      ? { kind: 'PatchOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: 'neverpull-guard-agent', force: true }
      : { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: 'neverpull-guard-agent' }
  return body
}

function refreshed(name: string, nodeName = name): FixtureNodeImageSet {
  const next = nodeImageSet(name, nodeName)
  next.status!.observedTime = '2026-11-21T06:04:50Z'
  return next
}

function withNewImage(name: string): FixtureNodeImageSet {
  const next = nodeImageSet(name)
  next.spec.images.push({
    id: 'sha256:' + 'e'.repeat(64),
    repoTags: ['docker.io/library/evil:1'],
    repoDigests: [],
    size: 1,
    pinned: false,
  })
  return next
}

type Expect = { allowed: boolean; reason: string; message?: RegExp; writerNode?: string }

const cases: Array<[string, Write, Expect]> = [
  [
    "agent creates its own node's set (1.30+ token names the node)",
    { userInfo: boundAgent('node-a'), object: nodeImageSet('node-a') },
    { allowed: true, reason: 'agent-own-node', writerNode: 'node-a' },
  ],
  [
    'agent refreshes its own status subresource',
    {
      operation: 'UPDATE',
      subResource: 'status',
      userInfo: boundAgent('node-a'),
      object: refreshed('node-a'),
      oldObject: nodeImageSet('node-a'),
    },
    { allowed: true, reason: 'agent-own-node', writerNode: 'node-a' },
  ],
  [
    'agent replaces its own image list',
    {
      operation: 'UPDATE',
      userInfo: boundAgent('node-a'),
      object: withNewImage('node-a'),
      oldObject: nodeImageSet('node-a'),
    },
    { allowed: true, reason: 'agent-own-node' },
  ],
  [
    "agent of node-a creates node-b's set",
    { userInfo: boundAgent('node-a'), object: nodeImageSet('node-b') },
    {
      allowed: false,
      reason: 'other-node',
      writerNode: 'node-a',
      message:
        /^NodeImageSet node-b: the neverpull-guard agent on node "node-a" may not write the image list of node "node-b"/,
    },
  ],
  [
    "agent of node-a rewrites node-b's list",
    {
      operation: 'UPDATE',
      userInfo: boundAgent('node-a'),
      object: withNewImage('node-b'),
      oldObject: nodeImageSet('node-b'),
    },
    { allowed: false, reason: 'other-node' },
  ],
  [
    "agent of node-a refreshes node-b's status (forged freshness)",
    {
      operation: 'UPDATE',
      subResource: 'status',
      userInfo: boundAgent('node-a'),
      object: refreshed('node-b'),
      oldObject: nodeImageSet('node-b'),
    },
    { allowed: false, reason: 'other-node' },
  ],
  [
    'agent of node-a names itself but points spec.nodeName at node-b',
    { userInfo: boundAgent('node-a'), object: nodeImageSet('node-a', 'node-b') },
    { allowed: false, reason: 'other-node', message: /may not write the image list of node "node-b"/ },
  ],
  [
    'agent token naming two nodes',
    {
      userInfo: { ...boundAgent('node-a'), extra: { [NODE_NAME_EXTRA]: ['node-a', 'node-b'] } },
      object: nodeImageSet('node-a'),
    },
    { allowed: false, reason: 'other-node' },
  ],
  [
    'agent before 1.30 (no node in the token): allowed for any node',
    { userInfo: unboundAgent, object: nodeImageSet('node-b') },
    { allowed: true, reason: 'agent-unbound' },
  ],
  [
    'agent with no extra at all',
    { userInfo: { username: AGENT, groups: SA_GROUPS }, object: nodeImageSet('node-c') },
    { allowed: true, reason: 'agent-unbound' },
  ],
  [
    'agent with an empty node-name list counts as unbound',
    {
      userInfo: { username: AGENT, groups: SA_GROUPS, extra: { [NODE_NAME_EXTRA]: [] } },
      object: nodeImageSet('node-c'),
    },
    { allowed: true, reason: 'agent-unbound' },
  ],
  [
    'a user forges a set',
    { userInfo: jane, object: nodeImageSet('node-a') },
    {
      allowed: false,
      reason: 'not-allowed',
      message:
        /^NodeImageSet node-a: user "jane@example.com" may not write NodeImageSets; only the neverpull-guard agent \(system:serviceaccount:neverpull-system:neverpull-guard-agent\), each for its own node, and members of system:masters may\.$/m,
    },
  ],
  [
    "a user empties a node's list (forged absence)",
    {
      operation: 'UPDATE',
      userInfo: jane,
      object: { ...nodeImageSet('node-a'), spec: { nodeName: 'node-a', images: [] } },
      oldObject: nodeImageSet('node-a'),
    },
    { allowed: false, reason: 'not-allowed' },
  ],
  [
    "a user refreshes a stale node's status",
    {
      operation: 'UPDATE',
      subResource: 'status',
      userInfo: jane,
      object: refreshed('node-a'),
      oldObject: nodeImageSet('node-a'),
    },
    { allowed: false, reason: 'not-allowed' },
  ],
  [
    'a ServiceAccount of the same name in another namespace',
    {
      userInfo: {
        ...boundAgent('node-a'),
        username: 'system:serviceaccount:default:neverpull-guard-agent',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:default', 'system:authenticated'],
      },
      object: nodeImageSet('node-a'),
    },
    {
      allowed: false,
      reason: 'not-allowed',
      message: /user "system:serviceaccount:default:neverpull-guard-agent" may not write/,
    },
  ],
  [
    "the webhook's own ServiceAccount only reads",
    {
      userInfo: { username: 'system:serviceaccount:neverpull-system:neverpull-guard-webhook', groups: SA_GROUPS },
      object: nodeImageSet('node-a'),
    },
    { allowed: false, reason: 'not-allowed' },
  ],
  [
    "a node's kubelet credentials",
    {
      userInfo: { username: 'system:node:node-a', groups: ['system:nodes', 'system:authenticated'] },
      object: nodeImageSet('node-a'),
    },
    { allowed: false, reason: 'not-allowed' },
  ],
  [
    'anonymous',
    { userInfo: { username: 'system:anonymous', groups: ['system:unauthenticated'] }, object: nodeImageSet('node-a') },
    { allowed: false, reason: 'not-allowed', message: /user "system:anonymous"/ },
  ],
  [
    "a cluster admin repairs any node's set",
    { operation: 'UPDATE', userInfo: admin, object: withNewImage('node-c'), oldObject: nodeImageSet('node-c') },
    { allowed: true, reason: 'admin' },
  ],
  [
    'a cluster admin still writes only well-formed sets',
    { userInfo: admin, object: Object.assign(nodeImageSet('node-a'), { spec: { nodeName: 'node-a' } }) },
    {
      allowed: false,
      reason: 'malformed',
      message: /^NodeImageSet node-a is malformed: \/spec must have required property 'images'$/,
    },
  ],
  [
    'agent writes an image without id',
    {
      userInfo: boundAgent('node-a'),
      object: Object.assign(nodeImageSet('node-a'), {
        spec: { nodeName: 'node-a', images: [{ repoTags: ['nginx'] }] },
      }),
    },
    {
      allowed: false,
      reason: 'malformed',
      message: /^NodeImageSet node-a is malformed: \/spec\/images\/0 must have required property 'id'$/,
    },
  ],
  [
    'agent writes a numeric tag',
    {
      userInfo: unboundAgent,
      object: Object.assign(nodeImageSet('node-a'), {
        spec: { nodeName: 'node-a', images: [{ id: 'sha256:1', repoTags: [7] }] },
      }),
    },
    { allowed: false, reason: 'malformed', message: /\/spec\/images\/0\/repoTags\/0 must be string/ },
  ],
  [
    'unbound agent: name and spec.nodeName disagree',
    { userInfo: unboundAgent, object: nodeImageSet('node-a', 'node-b') },
    {
      allowed: false,
      reason: 'malformed',
      message:
        /^NodeImageSet node-a is malformed: spec.nodeName is "node-b", but a NodeImageSet must be named after its node$/,
    },
  ],
  [
    'observedTime that is no time',
    {
      operation: 'UPDATE',
      subResource: 'status',
      userInfo: boundAgent('node-a'),
      object: { ...nodeImageSet('node-a'), status: { observedTime: 'forever' } },
      oldObject: nodeImageSet('node-a'),
    },
    { allowed: false, reason: 'malformed', message: /status.observedTime "forever" is not an RFC 3339 time/ },
  ],
  [
    'garbage collector orphans the set (metadata only)',
    {
      operation: 'UPDATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:generic-garbage-collector',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      },
      object: { ...nodeImageSet('node-a'), metadata: { ...nodeImageSet('node-a')['metadata'], ownerReferences: [] } },
      oldObject: nodeImageSet('node-a'),
    },
    { allowed: true, reason: 'metadata-only' },
  ],
  [
    'a user labels a set (metadata only)',
    {
      operation: 'UPDATE',
      userInfo: jane,
      object: { ...nodeImageSet('node-a'), metadata: { ...nodeImageSet('node-a')['metadata'], labels: { team: 'x' } } },
      oldObject: nodeImageSet('node-a'),
    },
    { allowed: true, reason: 'metadata-only' },
  ],
  [
    'DELETE is not judged (not registered; garbage collection)',
    { operation: 'DELETE', userInfo: jane, object: null, oldObject: nodeImageSet('node-a') },
    { allowed: true, reason: 'not-checked' },
  ],
]

t.test('who may write which NodeImageSet', async (t) => {
  for (const [name, write, expect] of cases) {
    const body = nisReview(write)
    const { reply, record } = guardNodeImageSetWrite(body, policy)
    t.equal(reply.apiVersion, 'admission.k8s.io/v1', `${name}: version`)
    t.equal(reply.kind, 'AdmissionReview', `${name}: kind`)
    t.equal(reply.response.uid, body['request'].uid, `${name}: uid`)
    t.equal(reply.response.allowed, expect.allowed, `${name}: allowed`)
    t.equal(record.reason, expect.reason, `${name}: reason`)
    t.equal(
      record.decision,
      expect.reason === 'not-checked' ? 'skip' : expect.allowed ? 'allow' : 'deny',
      `${name}: decision`,
    )
    if (expect.allowed) {
      t.equal(reply.response.status, undefined, `${name}: no status`)
      t.equal(reply.response.warnings, undefined, `${name}: no warning (the agent would log it every write)`)
    } else {
      t.equal(reply.response.status?.code, 403, `${name}: 403`)
      t.equal(reply.response.status?.reason, 'Forbidden', `${name}: Forbidden`)
      const first = reply.response.status?.message.split('\n')[0] ?? ''
      t.notMatch(first, /[^\u0020-\uffff]/, `${name}: first line is one line`)
    }
    if (expect.message !== undefined) t.match(reply.response.status?.message ?? '', expect.message, `${name}: message`)
    if (expect.writerNode !== undefined) t.equal(record.writerNode, expect.writerNode, `${name}: writer node`)
    t.equal(record.user, (write.userInfo as { username: string }).username, `${name}: user`)
  }
})

t.test('the record names the write for the log line and the metrics', async (t) => {
  const body = nisReview({
    operation: 'UPDATE',
    subResource: 'status',
    userInfo: boundAgent('node-a'),
    object: refreshed('node-a'),
    oldObject: nodeImageSet('node-a'),
    dryRun: true,
  })
  const { record } = guardNodeImageSetWrite(body, policy)
  t.same(record, {
    uid: body['request'].uid,
    kind: 'NodeImageSet/status',
    namespace: '',
    name: 'node-a',
    operation: 'UPDATE',
    user: AGENT,
    dryRun: true,
    decision: 'allow',
    reason: 'agent-own-node',
    writerNode: 'node-a',
  })
  const bad = guardNodeImageSetWrite(
    nisReview({
      userInfo: boundAgent('node-a'),
      object: Object.assign(nodeImageSet('node-a'), { spec: { nodeName: 'node-a' } }),
    }),
    policy,
  )
  t.equal(bad.record.error, "malformed: /spec must have required property 'images'")
})

t.test("a denied user is told who may write and how to fix a node's list instead", async (t) => {
  const { reply } = guardNodeImageSetWrite(nisReview({ userInfo: jane, object: nodeImageSet('node-a') }), policy)
  const lines = reply.response.status?.message.split('\n') ?? []
  t.equal(lines.length, 2)
  t.equal(
    lines[0],
    'NodeImageSet node-a: user "jane@example.com" may not write NodeImageSets; only the neverpull-guard agent ' +
      '(system:serviceaccount:neverpull-system:neverpull-guard-agent), each for its own node, and members of system:masters may.',
  )
  t.match(lines[1], /load or remove the image on the node/)
  t.match(lines[1], /kubectl delete nodeimageset NAME/)
})

t.test('the agent ServiceAccount and the admin groups come from the policy', async (t) => {
  const custom: NodeImageSetPolicy = {
    agentServiceAccount: { namespace: 'infra', name: 'image-agent' },
    adminGroups: [],
  }
  const agent = {
    username: 'system:serviceaccount:infra:image-agent',
    groups: ['system:serviceaccounts'],
    extra: { [NODE_NAME_EXTRA]: ['node-a'] },
  }
  t.equal(
    guardNodeImageSetWrite(nisReview({ userInfo: agent, object: nodeImageSet('node-a') }), custom).reply.response
      .allowed,
    true,
  )
  const old = guardNodeImageSetWrite(
    nisReview({ userInfo: boundAgent('node-a'), object: nodeImageSet('node-a') }),
    custom,
  )
  t.equal(old.reply.response.allowed, false, 'the default agent is nobody special under another policy')
  t.match(
    old.reply.response.status?.message ?? '',
    /only the neverpull-guard agent \(system:serviceaccount:infra:image-agent\), each for its own node may\./,
  )
  const master = guardNodeImageSetWrite(nisReview({ userInfo: admin, object: nodeImageSet('node-a') }), custom)
  t.equal(
    master.reply.response.allowed,
    false,
    'no admin groups: system:masters is refused too (the apiserver lets them delete)',
  )
})

t.test('reviews this route does not judge are allowed untouched', async (t) => {
  const pod = review('pod-create')
  const skipped = guardNodeImageSetWrite(pod, policy)
  t.equal(skipped.reply.response.allowed, true)
  t.equal(skipped.record.decision, 'skip')
  const other = nisReview({ subResource: 'scale', userInfo: jane, object: nodeImageSet('node-a') })
  t.equal(guardNodeImageSetWrite(other, policy).record.reason, 'not-checked')
  const group = nisReview({ userInfo: jane, object: nodeImageSet('node-a') })
  group['request'].kind.group = 'example.com'
  t.equal(guardNodeImageSetWrite(group, policy).record.reason, 'not-checked')
})

t.test('a malformed AdmissionReview is a 400 AdmissionReview in its own version', async (t) => {
  const body = nisReview({ userInfo: jane, object: nodeImageSet('node-a') })
  body['apiVersion'] = 'admission.k8s.io/v1beta1'
  body['request'].operation = 'PATCH'
  const { reply, record } = guardNodeImageSetWrite(body, policy)
  t.equal(reply.apiVersion, 'admission.k8s.io/v1beta1')
  t.equal(reply.response.uid, body['request'].uid)
  t.equal(reply.response.allowed, false)
  t.equal(reply.response.status?.code, 400)
  t.equal(record.decision, 'invalid')
  t.equal(record.reason, 'invalid-review')
  for (const junk of [null, 'x', 42, [], {}]) {
    t.equal(guardNodeImageSetWrite(junk, policy).reply.response.allowed, false, `junk ${JSON.stringify(junk)}`)
  }
  const v1beta1 = nisReview({ userInfo: boundAgent('node-a'), object: nodeImageSet('node-a') })
  v1beta1['apiVersion'] = 'admission.k8s.io/v1beta1'
  t.equal(guardNodeImageSetWrite(v1beta1, policy).reply.apiVersion, 'admission.k8s.io/v1beta1', 'answered in kind')
})

t.test('--agent-service-account and NEVERPULL_AGENT_SERVICE_ACCOUNT', async (t) => {
  const base = ['--inventory-file', 'examples/inventory.yaml']
  const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) => webhookConfig([...base, ...argv], env)
  const dflt = parse([])
  t.ok(dflt.ok)
  if (dflt.ok) t.same(dflt.config.agentServiceAccount, { namespace: 'neverpull-system', name: 'neverpull-guard-agent' })
  const flag = parse(['--agent-service-account', 'infra:image-agent'], {
    NEVERPULL_AGENT_SERVICE_ACCOUNT: 'ignored:by-flag',
  })
  if (flag.ok) t.same(flag.config.agentServiceAccount, { namespace: 'infra', name: 'image-agent' })
  else t.fail(flag.error)
  const env = parse([], { NEVERPULL_AGENT_SERVICE_ACCOUNT: 'system:serviceaccount:ops:agent.v2' })
  if (env.ok) t.same(env.config.agentServiceAccount, { namespace: 'ops', name: 'agent.v2' })
  else t.fail(env.error)
  for (const bad of [
    'neverpull-guard-agent',
    'a:b:c',
    'Ops:agent',
    ':agent',
    'ops:',
    'ops:agent_1',
    `${'n'.repeat(64)}:agent`,
  ]) {
    const r = parse(['--agent-service-account', bad])
    t.equal(r.ok, false, bad)
    if (!r.ok) t.match(r.error, /^--agent-service-account: ".*" is not NAMESPACE:NAME of a ServiceAccount/, bad)
  }
  t.same(parseServiceAccount('neverpull-system:neverpull-guard-agent'), {
    namespace: 'neverpull-system',
    name: 'neverpull-guard-agent',
  })
})
