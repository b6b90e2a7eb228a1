import { DEFAULT_IMAGE_GC } from '../api/image-gc.js'
import { lookupKey } from '../image/reference.js'
import type { InventoryView } from '../inventory/inventory-index.js'
import { bitsHas } from '../util/node-set.js'
import { decide } from '../decision/decide.js'
import {
  CTR_IMPORT,
  KIND_WORDS,
  MAY_PULL_FIX,
  findingLine,
  kindLoadCommand,
  minikubeLoadCommand,
  moveCommand,
  pinCommand,
} from '../decision/messages.js'
import { extractPodTemplate } from '../workload/pod-template.js'
import { age, whereIs } from './where.js'

// Why is this pod stuck? For a live pod, typically in ErrImageNeverPull: its node, each
// `Never` container, whether the image is on that node now, where else it is, and the fix.

interface PodLike {
  metadata?: { name?: string; namespace?: string }
  spec?: { nodeName?: string }
  status?: {
    phase?: string
    containerStatuses?: ContainerStatus[]
    initContainerStatuses?: ContainerStatus[]
    ephemeralContainerStatuses?: ContainerStatus[]
  }
}

interface ContainerStatus {
  name: string
  state?: { waiting?: { reason?: string; message?: string } }
}

export function explainPod(pod: unknown, view: InventoryView, now: number): string {
  const p = pod as PodLike
  const name = `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`
  const extracted = extractPodTemplate('Pod', pod)
  if (!extracted.ok) return `Pod ${name}: cannot read its spec: ${extracted.error}\n`
  const template = extracted.template
  if (template === null) return `Pod ${name} has no spec\n`
  const nodeName = p.spec?.nodeName
  const out: string[] = []
  out.push(
    `Pod ${name}: ${nodeName ? `on node ${nodeName}` : 'not scheduled yet'}, phase ${p.status?.phase ?? 'unknown'}`,
  )
  const runtimeClassName = (p.spec as { runtimeClassName?: unknown } | undefined)?.runtimeClassName
  if (typeof runtimeClassName === 'string' && runtimeClassName !== '') {
    const rc = view.runtimeClass(runtimeClassName)
    out.push(
      rc !== undefined
        ? `RuntimeClass ${runtimeClassName} (handler ${rc.handler}): the apiserver merged its nodeSelector and tolerations into this pod`
        : view.runtimeClassesComplete
          ? `RuntimeClass ${runtimeClassName} does not exist now: new pods naming it are rejected`
          : `RuntimeClass ${runtimeClassName} is not in the inventory`,
    )
  }
  const never = template.containers.filter((c) => c.pullPolicy === 'Never')
  if (never.length === 0) {
    out.push('No container uses imagePullPolicy: Never: neverpull-guard has nothing to say about this pod.')
    return out.join('\n') + '\n'
  }
  const statuses = new Map<string, ContainerStatus>()
  for (const s of [
    ...(p.status?.initContainerStatuses ?? []),
    ...(p.status?.containerStatuses ?? []),
    ...(p.status?.ephemeralContainerStatuses ?? []),
  ]) {
    statuses.set(s.name, s)
  }
  const slot = nodeName === undefined ? undefined : view.slotOf(nodeName)
  const fresh = view.freshNodes(now)
  const decision = decide(view, {
    subject: { kind: 'Pod', namespace: p.metadata?.namespace ?? '', name: p.metadata?.name ?? '', operation: 'CREATE' },
    template,
    mode: 'enforce',
    now,
  })
  for (const f of decision.findings) {
    const c = f.container
    const key = lookupKey(c.image)
    out.push('')
    const what = KIND_WORDS[c.kind]
    const slotHere = nodeName === undefined ? undefined : view.slotOf(nodeName)
    const keysHere = key.ok && slotHere !== undefined ? view.lookupKeysOn(key, slotHere) : undefined
    const lookedUp = !key.ok
      ? ''
      : keysHere !== undefined && (keysHere.length !== 1 || keysHere[0] !== key.key)
        ? ` (looked up on ${nodeName} as ${keysHere.length === 0 ? 'nothing: no search registry or alias' : keysHere.join(', then ')})`
        : ` (looked up as ${key.key})`
    out.push(
      `${what} "${c.name}": image ${c.image}${lookedUp}, ${c.kind === 'imageVolume' ? 'pullPolicy' : 'imagePullPolicy'}: Never`,
    )
    const waiting = statuses.get(c.name)?.state?.waiting
    if (waiting?.reason !== undefined)
      out.push(`  state: waiting, ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`)
    if (!key.ok) {
      out.push(`  ${key.error}: the kubelet cannot use this reference. Correct the image field.`)
      continue
    }
    const report = whereIs(view, c.image, now)
    const elsewhere = report.rows.filter((r) => r.presence === 'present' && r.node !== nodeName).map((r) => r.node)
    if (nodeName !== undefined) {
      if (slot === undefined || view.node(slot) === undefined) {
        out.push(`  node ${nodeName}: not in the inventory (no Node or NodeImageSet for it)`)
      } else {
        const here = view.nodesResolving(key, fresh)?.has(slot) === true
        const known = bitsHas(fresh, slot)
        const observed = age(view.observedAt(slot), now)
        const state = here ? 'present' : known ? 'NOT present' : 'unknown: its image list is missing or stale'
        out.push(`  on ${nodeName}: ${state} (image list observed ${observed})`)
        const mine = report.rows.find((r) => r.node === nodeName)
        if (!here && mine !== undefined && mine.sameRepository.length > 0)
          out.push(`  ${nodeName} has ${mine.sameRepository.join(', ')} of the same repository`)
        const fs = view.imageFilesystem(slot)
        if (
          here &&
          fs?.usedPercent !== undefined &&
          fs.usedPercent >= DEFAULT_IMAGE_GC.highThresholdPercent &&
          !view.isPinned(slot, key.key)
        ) {
          out.push(
            `  ${nodeName}: its image filesystem is ${fs.usedPercent}% full and the image is not pinned: at or above the kubelet's image GC threshold ` +
              `(default ${DEFAULT_IMAGE_GC.highThresholdPercent}%), it may be deleted once unused; pin it: ${pinCommand(c.image)}`,
          )
        }
        const hidden = here ? undefined : mine?.elsewhere[0]
        if (hidden !== undefined) {
          out.push(
            `  ${nodeName} holds it as ${hidden.name} in containerd namespace "${hidden.namespace}", where the kubelet does not look (only k8s.io)`,
          )
          out.push(`  fix: on ${nodeName}: ${moveCommand(hidden)}`)
        }
      }
    } else {
      out.push(`  ${findingLine(f, { kind: 'Pod', namespace: '', name: '', operation: 'CREATE' })}`)
    }
    out.push(
      `  elsewhere: ${elsewhere.length > 0 ? elsewhere.slice(0, 5).join(', ') + (elsewhere.length > 5 ? ` and ${elsewhere.length - 5} more` : '') : 'on no other node'}`,
    )
    if (nodeName === undefined && f.wrongPlace[0] !== undefined) {
      const w = f.wrongPlace[0]
      out.push(`  fix: on ${w.node}: ${moveCommand(w)}`)
    }
    if (f.reason !== 'present') {
      const target = nodeName ?? 'the eligible nodes'
      out.push(
        `  fix: load it onto ${target}: ${CTR_IMPORT} IMAGE.tar there (kind: ${kindLoadCommand(c.image)}${nodeName ? ` --nodes ${nodeName}` : ''}; minikube: ${minikubeLoadCommand(c.image)}); the kubelet retries by itself once it is there`,
      )
      if (elsewhere.length > 0 && nodeName !== undefined) {
        out.push(
          `       or run the pod where the image is: nodeSelector kubernetes.io/hostname: ${elsewhere[0]} (or node affinity), then recreate it`,
        )
      }
      if (f.suggestions.length > 0) out.push(`       or did you mean ${f.suggestions.join(', ')}?`)
      out.push(`       or ${MAY_PULL_FIX}`)
    }
  }
  return out.join('\n') + '\n'
}
