import t from 'tap'
import { bitsForEach } from '../../src/util/node-set.js'
import type { Taint, Toleration } from '../../src/api/types.js'
import { daemonSetTolerations, parseInt64, tolerates, type Placement } from '../../src/api/scheduling.js'
import { eligibleNodes } from '../../src/placement/placement.js'
import { buildIndex } from '../helpers/inventory.js'

const index = buildIndex([
  { name: 'a1', labels: { zone: 'a', disk: 'ssd', cores: '8' } },
  { name: 'a2', labels: { zone: 'a', disk: 'hdd', cores: '16' } },
  {
    name: 'b1',
    labels: { zone: 'b', disk: 'ssd', cores: '32', gpu: 'true' },
    taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }],
  },
  { name: 'b2', labels: { zone: 'b', cores: 'many' }, taints: [{ key: 'maint', effect: 'NoExecute' }] },
  { name: 'c1', labels: { zone: 'c' }, unschedulable: true },
  { name: 'c2', labels: { zone: 'c' }, taints: [{ key: 'soft', effect: 'PreferNoSchedule' }] },
])

function eligible(p: Partial<Placement>): string[] {
  const r = eligibleNodes(index, { tolerations: [], ...p })
  const names: string[] = []
  bitsForEach(r.nodes, (s) => {
    names.push(index.nameOf(s))
  })
  t.equal(r.count, names.length, 'count matches the bitset')
  return names.sort()
}

const expr = (key: string, operator: string, values?: string[]) => ({
  matchExpressions: [{ key, operator, ...(values ? { values } : {}) }],
})

const cases: Array<[string, Partial<Placement>, string[]]> = [
  ['no constraints: untainted, uncordoned nodes (PreferNoSchedule never filters)', {}, ['a1', 'a2', 'c2']],
  ['nodeSelector, one pair', { nodeSelector: { zone: 'a' } }, ['a1', 'a2']],
  ['nodeSelector, every pair must match', { nodeSelector: { zone: 'a', disk: 'ssd' } }, ['a1']],
  ['nodeSelector on a label no node has', { nodeSelector: { zone: 'z' } }, []],
  ['In', { requiredTerms: [expr('disk', 'In', ['ssd', 'nvme'])] }, ['a1']],
  ['NotIn matches nodes without the label too', { requiredTerms: [expr('disk', 'NotIn', ['hdd'])] }, ['a1', 'c2']],
  ['Exists', { requiredTerms: [expr('disk', 'Exists')] }, ['a1', 'a2']],
  ['DoesNotExist', { requiredTerms: [expr('disk', 'DoesNotExist')] }, ['c2']],
  [
    'Gt compares integers and skips non-integer values',
    { requiredTerms: [expr('cores', 'Gt', ['10'])], tolerations: [{ operator: 'Exists' }] },
    ['a2', 'b1'],
  ],
  ['Lt', { requiredTerms: [expr('cores', 'Lt', ['10'])] }, ['a1']],
  ['Gt with two values matches nothing', { requiredTerms: [expr('cores', 'Gt', ['1', '2'])] }, []],
  ['Gt with a non-integer matches nothing', { requiredTerms: [expr('cores', 'Gt', ['x'])] }, []],
  ['unknown operator matches nothing', { requiredTerms: [expr('zone', 'Like', ['a'])] }, []],
  ['terms are ORed', { requiredTerms: [expr('zone', 'In', ['a']), expr('zone', 'In', ['c'])] }, ['a1', 'a2', 'c2']],
  [
    'expressions in a term are ANDed',
    {
      requiredTerms: [
        {
          matchExpressions: [
            { key: 'zone', operator: 'In', values: ['a'] },
            { key: 'disk', operator: 'In', values: ['hdd'] },
          ],
        },
      ],
    },
    ['a2'],
  ],
  ['an empty term list matches nothing', { requiredTerms: [] }, []],
  ['an empty term matches nothing', { requiredTerms: [{}] }, []],
  ['an empty term beside a real one', { requiredTerms: [{}, expr('zone', 'In', ['a'])] }, ['a1', 'a2']],
  [
    'matchFields metadata.name In',
    { requiredTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['a2', 'nope'] }] }] },
    ['a2'],
  ],
  [
    'matchFields metadata.name NotIn',
    { requiredTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['a2'] }] }] },
    ['a1', 'c2'],
  ],
  [
    'matchFields on another field matches nothing',
    { requiredTerms: [{ matchFields: [{ key: 'metadata.uid', operator: 'In', values: ['a2'] }] }] },
    [],
  ],
  [
    'nodeSelector and affinity both apply',
    { nodeSelector: { zone: 'a' }, requiredTerms: [expr('disk', 'In', ['ssd'])] },
    ['a1'],
  ],
  [
    'Equal toleration of the gpu taint',
    { tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }] },
    ['a1', 'a2', 'b1', 'c2'],
  ],
  [
    'toleration with the wrong value',
    { tolerations: [{ key: 'dedicated', value: 'cpu', effect: 'NoSchedule' }] },
    ['a1', 'a2', 'c2'],
  ],
  [
    'toleration with the wrong effect',
    { tolerations: [{ key: 'dedicated', operator: 'Exists', effect: 'NoExecute' }] },
    ['a1', 'a2', 'c2'],
  ],
  [
    'Exists with an empty key tolerates every taint, the cordon included',
    { tolerations: [{ operator: 'Exists' }] },
    ['a1', 'a2', 'b1', 'b2', 'c1', 'c2'],
  ],
  [
    'a cordoned node needs the unschedulable toleration',
    { tolerations: [{ key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' }] },
    ['a1', 'a2', 'c1', 'c2'],
  ],
  ['nodeName bypasses taints and cordons', { nodeName: 'c1', nodeSelector: { zone: 'a' } }, ['c1']],
]

for (const [name, placement, expected] of cases) {
  t.same(eligible(placement), expected, name)
}

t.test('nodeName of a node the inventory does not know', async (t) => {
  const r = eligibleNodes(index, { nodeName: 'ghost', tolerations: [] })
  t.equal(r.count, 0)
  t.equal(r.unknownNodeName, 'ghost')
})

t.test('tolerates follows v1.Toleration.ToleratesTaint', async (t) => {
  const taint: Taint = { key: 'k', value: 'v', effect: 'NoSchedule' }
  const table: Array<[Toleration, boolean]> = [
    [{ key: 'k', operator: 'Equal', value: 'v', effect: 'NoSchedule' }, true],
    [{ key: 'k', value: 'v' }, true], // operator defaults to Equal, empty effect matches all
    [{ key: 'k', operator: 'Exists' }, true],
    [{ operator: 'Exists' }, true],
    [{ operator: 'Exists', effect: 'NoExecute' }, false],
    [{ key: 'k', value: 'w' }, false],
    [{ key: 'other', operator: 'Exists' }, false],
    [{ value: 'v' }, false], // empty key with Equal is not a wildcard
    [{ key: 'k', operator: 'Gt', value: 'v' }, false], // Gt needs int64 values on both sides
    [{ key: 'k', operator: 'Like' as Toleration['operator'], value: 'v' }, false],
  ]
  for (const [toleration, expected] of table)
    t.equal(tolerates(toleration, taint), expected, JSON.stringify(toleration))
  t.ok(
    tolerates({ key: 'n', operator: 'Equal' }, { key: 'n', effect: 'NoSchedule' }),
    'empty value equals a taint without value',
  )
})

t.test('DaemonSet pods get the controller tolerations', async (t) => {
  const keys = daemonSetTolerations(false).map((x) => `${x.key}:${x.effect}`)
  t.ok(keys.includes('node.kubernetes.io/unschedulable:NoSchedule'))
  t.ok(keys.includes('node.kubernetes.io/not-ready:NoExecute'))
  t.notOk(keys.includes('node.kubernetes.io/network-unavailable:NoSchedule'))
  t.ok(daemonSetTolerations(true).some((x) => x.key === 'node.kubernetes.io/network-unavailable'))
  t.same(
    eligible({ tolerations: daemonSetTolerations(false) }),
    ['a1', 'a2', 'c1', 'c2'],
    'cordoned nodes still run daemons',
  )
})

// Gt/Lt are int64 comparisons: apimachinery labels/selector.go (NewRequirement, Requirement.Matches)
// parse both sides with strconv.ParseInt(v, 10, 64); component-helpers
// scheduling/corev1/nodeaffinity (newNodeSelectorTerm) fails the whole term on a bad value.
t.test('Gt/Lt compare as int64, like strconv.ParseInt', async (t) => {
  const big = buildIndex([
    { name: 'max', labels: { n: '9223372036854775807' } },
    { name: 'overflow', labels: { n: '9223372036854775808' } },
    { name: 'min', labels: { n: '-9223372036854775808' } },
    { name: 'underflow', labels: { n: '-9223372036854775809' } },
    { name: 'p53', labels: { n: '9007199254740993' } },
    { name: 'plus', labels: { n: '+7' } },
    { name: 'lead0', labels: { n: '007' } },
    { name: 'hex', labels: { n: '0x10' } },
    { name: 'exp', labels: { n: '1e3' } },
    { name: 'under', labels: { n: '1_000' } },
    { name: 'none' },
  ])
  const names = (p: Partial<Placement>): string[] => {
    const r = eligibleNodes(big, { tolerations: [], ...p })
    const out: string[] = []
    bitsForEach(r.nodes, (s) => {
      out.push(big.nameOf(s))
    })
    return out.sort()
  }
  const table: Array<[string, string, string[], string[]]> = [
    ['a label past int64 never matches Gt', 'Gt', ['9223372036854775806'], ['max']],
    ['2^53+1 > 2^53 (a float64 would call them equal)', 'Gt', ['9007199254740992'], ['max', 'p53']],
    ['2^53+1 is not > 2^53+1', 'Lt', ['9007199254740993'], ['lead0', 'min', 'plus']],
    // Was ['min']: but a negative requirement value is no label value, and NewRequirement's
    // validateLabelValue fails the whole term (nodes cannot carry such labels either).
    ['a negative requirement value is no label value: the term fails', 'Lt', ['-9223372036854775807'], []],
    [
      '+7 and 007 parse as 7; hex, exponents and underscores do not parse',
      'Gt',
      ['6'],
      ['lead0', 'max', 'p53', 'plus'],
    ],
    ['a requirement value past int64 fails the requirement', 'Gt', ['9223372036854775808'], []],
    ['a requirement value that is not decimal fails the requirement', 'Lt', ['1e9'], []],
    ['an empty requirement value fails the requirement', 'Gt', [''], []],
    ['a requirement value with a space fails', 'Gt', [' 1'], []],
  ]
  for (const [name, op, values, want] of table) {
    t.same(names({ requiredTerms: [{ matchExpressions: [{ key: 'n', operator: op, values }] }] }), want, name)
  }
  t.same(
    names({
      requiredTerms: [
        { matchExpressions: [{ key: 'n', operator: 'Gt', values: ['x'] }] },
        { matchExpressions: [{ key: 'n', operator: 'Exists' }] },
      ],
    }),
    ['exp', 'hex', 'lead0', 'max', 'min', 'overflow', 'p53', 'plus', 'under', 'underflow'],
    'a term that fails to parse does not take the other terms with it (LazyErrorNodeSelector.Match)',
  )
  t.equal(parseInt64('9223372036854775807'), 9223372036854775807n)
  t.equal(parseInt64('-0'), 0n)
  t.equal(parseInt64('9223372036854775808'), undefined)
  t.equal(parseInt64('٣'), undefined, 'only ASCII digits')
})

// k8s.io/api core/v1 toleration.go ToleratesTaint / compareNumericValues (1.35, alpha gate
// TaintTolerationComparisonOperators): Lt tolerates a taint whose value is less than the
// toleration's, Gt one whose value is greater; both must parse as int64.
t.test('Lt/Gt tolerations compare the taint value with the toleration value as int64', async (t) => {
  const taint = (value: string): Taint => ({ key: 'tier', value, effect: 'NoSchedule' })
  const table: Array<[Toleration, string, boolean]> = [
    [{ key: 'tier', operator: 'Lt', value: '5' }, '3', true],
    [{ key: 'tier', operator: 'Lt', value: '5' }, '5', false],
    [{ key: 'tier', operator: 'Gt', value: '5' }, '6', true],
    [{ key: 'tier', operator: 'Gt', value: '5' }, '5', false],
    [{ key: 'tier', operator: 'Gt', value: '9007199254740992' }, '9007199254740993', true],
    [{ key: 'tier', operator: 'Lt', value: '10' }, '9223372036854775808', false],
    [{ key: 'tier', operator: 'Gt', value: 'x' }, '6', false],
    [{ key: 'tier', operator: 'Gt', value: '5' }, 'high', false],
    [{ key: 'other', operator: 'Gt', value: '5' }, '6', false],
    [{ key: 'tier', operator: 'Gt', value: '5', effect: 'NoExecute' }, '6', false],
  ]
  for (const [toleration, value, want] of table)
    t.equal(tolerates(toleration, taint(value)), want, `${JSON.stringify(toleration)} vs ${value}`)
})

// pkg/controller/daemon NodeShouldRunDaemonPod: with the template's nodeName set, the
// controller runs a daemon pod there only if the node fits node affinity and taints.
t.test('a DaemonSet nodeName still applies node affinity and taints', async (t) => {
  const ds = (nodeName: string, p: Partial<Placement> = {}): string[] =>
    eligible({ nodeName, nodeNameFiltered: true, tolerations: daemonSetTolerations(false), ...p })
  t.same(ds('a1'), ['a1'], 'a plain node')
  t.same(ds('b1'), [], 'the gpu taint is not tolerated: no daemon pod there')
  t.same(ds('b1', { tolerations: [...daemonSetTolerations(false), { key: 'dedicated', operator: 'Exists' }] }), ['b1'])
  t.same(ds('a1', { nodeSelector: { zone: 'b' } }), [], 'the nodeSelector does not match the named node')
  t.same(ds('a1', { requiredTerms: [expr('disk', 'In', ['ssd'])] }), ['a1'])
  t.same(ds('a2', { requiredTerms: [expr('disk', 'In', ['ssd'])] }), [], 'required affinity does not match')
  t.same(ds('c1'), ['c1'], 'a cordoned node still runs daemons (the controller tolerates unschedulable)')
  t.same(eligible({ nodeName: 'b1', nodeSelector: { zone: 'a' } }), ['b1'], 'a Pod bound by nodeName bypasses both')
  const r = eligibleNodes(index, { nodeName: 'ghost', nodeNameFiltered: true, tolerations: [] })
  t.equal(r.unknownNodeName, 'ghost', 'an unknown node is still unknown')
})
