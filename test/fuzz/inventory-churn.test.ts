import fc from 'fast-check'
import t from 'tap'
import { InventoryIndex } from '../../src/inventory/inventory-index.js'
import { bitsHas, type Bits } from '../../src/util/node-set.js'
import type { NodeFacts } from '../../src/api/types.js'

// The index under the churn a cluster produces (nodes added, relabelled, removed, autoscaled
// away under new names), against a model that is just a Map of live nodes.

type Op = { op: 'upsert'; node: number; labels: Record<string, string> } | { op: 'remove'; node: number }

const label = fc.dictionary(
  fc.constantFrom('zone', 'disk', 'pool', 'kubernetes.io/hostname'),
  fc.constantFrom('a', 'b', 'c', 'ssd', 'hdd', 'x'),
  { maxKeys: 4 },
)
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('upsert' as const), node: fc.nat(40), labels: label }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('remove' as const), node: fc.nat(40) }) },
)

function facts(name: string, labels: Record<string, string>): NodeFacts {
  return { name, labels, taints: [], unschedulable: false, ready: true, statusImageNames: [] }
}

function apply(index: InventoryIndex, model: Map<string, Record<string, string>>, ops: Op[]): void {
  for (const o of ops) {
    const name = `node-${o.node}`
    if (o.op === 'upsert') {
      // An autoscaled node's hostname label is its (fresh) name.
      const labels = 'kubernetes.io/hostname' in o.labels ? { ...o.labels, 'kubernetes.io/hostname': name } : o.labels
      index.upsertNode(facts(name, labels))
      model.set(name, labels)
    } else {
      index.removeNode(name)
      model.delete(name)
    }
  }
}

function members(index: InventoryIndex, bits: Bits | undefined): string[] {
  const out: string[] = []
  if (bits === undefined) return out
  for (let slot = 0; slot < bits.length * 32; slot++) if (bitsHas(bits, slot)) out.push(index.nameOf(slot))
  return out.sort()
}

t.test('label indexes answer exactly the live nodes after any churn', async (t) => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const index = new InventoryIndex({ staleAfterMs: 60_000 })
      const model = new Map<string, Record<string, string>>()
      apply(index, model, ops)
      for (const key of ['zone', 'disk', 'pool', 'kubernetes.io/hostname']) {
        const withKey = [...model]
          .filter(([, l]) => key in l)
          .map(([n]) => n)
          .sort()
        if (JSON.stringify(members(index, index.labelKey(key))) !== JSON.stringify(withKey))
          throw new Error(`labelKey(${key})`)
        for (const value of ['a', 'b', 'c', 'ssd', 'hdd', 'x']) {
          const want = [...model]
            .filter(([, l]) => l[key] === value)
            .map(([n]) => n)
            .sort()
          if (JSON.stringify(members(index, index.labelValue(key, value))) !== JSON.stringify(want))
            throw new Error(`labelValue(${key}, ${value})`)
        }
      }
      if (index.nodeCount !== model.size) throw new Error(`nodeCount ${index.nodeCount}, model ${model.size}`)
      return true
    }),
    { numRuns: 200 },
  )
  t.pass('200 churn sequences')
})

t.test('label values of removed nodes are forgotten (no growth with autoscaled node names)', async (t) => {
  const index = new InventoryIndex({ staleAfterMs: 60_000 })
  for (let i = 0; i < 1000; i++) {
    const name = `pool-a-${i.toString(36)}`
    index.upsertNode(facts(name, { 'kubernetes.io/hostname': name, 'node.kubernetes.io/instance-type': `m${i}` }))
    index.removeNode(name)
  }
  t.equal(index.nodeCount, 0)
  t.equal(index.labelValues('kubernetes.io/hostname')?.size ?? 0, 0, 'hostname values of 1000 removed nodes')
  t.equal(index.labelKey('kubernetes.io/hostname'), undefined, 'the key itself')
})
