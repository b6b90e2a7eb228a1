import { MODE_LABEL } from '../api/types.js'
import type { ContainerFacts } from '../workload/pod-template.js'
import type { Decision, Finding, Note, NodeList, Subject, WrongPlace } from './decide.js'

// Text for the person at the terminal. kubectl prints a denial as
//   Error from server (Forbidden): error when creating "app.yaml": admission webhook "NAME" denied the request: <message>
// and each warning as `Warning: <text>`. The apiserver silently drops a warning with a
// control character, so every piece of user input is escaped, and a warning is one line of
// at most 256 runes (past 4096 runes in all the apiserver truncates them to 256 each).

export const MAX_WARNING_RUNES = 256
/**
 * k8s.io/apiserver pkg/endpoints/filters/warning.go (recorder.AddWarning): past 4 * 1024 runes
 * of warning text in one response every warning is cut to 256 runes and later ones are
 * dropped. All of ours together stay within it.
 */
export const MAX_WARNINGS_TOTAL_RUNES = 4096
/** A pod with thousands of failing containers gets a denial of a few KiB, not megabytes. */
const NAMED_IN_SUMMARY = 5
const DETAILED = 20

/**
 * Characters clean() rewrites, or that need a closer look (surrogates, paired or not): C0 and
 * C1 controls and DEL (U+0000-001F, U+007F-009F) and U+D800-DFFF, written as the complement.
 */
const SPECIAL = /[^\u0020-\u007e\u00a0-\ud7ff\ue000-\uffff]/
const SURROGATE = /[\ud800-\udfff]/

/** Escapes control characters and lone surrogates so the text survives the apiserver. */
export function clean(s: string): string {
  // The common case, plain text, is returned as it is: no per-character rebuild.
  if (!SPECIAL.test(s)) return s
  let out = ''
  for (const ch of s) {
    const code = ch.codePointAt(0)!
    if (code < 0x20 || code === 0x7f || (code >= 0x80 && code < 0xa0)) {
      out += `\\x${code.toString(16).padStart(2, '0')}`
    } else if (code >= 0xd800 && code <= 0xdfff) {
      out += '\\ufffd'
    } else {
      out += ch
    }
  }
  return out
}

function quote(s: string, max = 120): string {
  return `"${cap(clean(s), max)}"`
}

/**
 * Marks a cut. ASCII, not U+2026: one non-Latin-1 character makes the whole reply a two-byte
 * string, which JSON.stringify and the UTF-8 encoding of the response then walk more slowly
 * (1.6 µs more per warned reply in a warm loop; ~7 µs of server CPU in the perf profile).
 */
const CUT = '...'

/**
 * Cuts to at most `max` runes, marking the cut. A string has at least as many UTF-16 units as
 * runes, so one no longer than `max` units fits as it is, and one without surrogates is cut by
 * units; only text with astral characters is walked rune by rune.
 */
export function cap(s: string, max = MAX_WARNING_RUNES): string {
  if (s.length <= max) return s
  if (!SURROGATE.test(s)) return s.slice(0, max - CUT.length) + CUT
  const runes = [...s]
  return runes.length <= max ? s : runes.slice(0, max - CUT.length).join('') + CUT
}

/** What each kind of checked container is called, in messages and in `explain`. */
export const KIND_WORDS: Record<ContainerFacts['kind'], string> = {
  container: 'container',
  initContainer: 'init container',
  ephemeralContainer: 'ephemeral container',
  imageVolume: 'image volume',
}

function who(c: ContainerFacts): string {
  return `${KIND_WORDS[c.kind]} ${quote(c.name, 63)}`
}

function list(nodes: NodeList): string {
  if (nodes.count === 0) return ''
  const more = nodes.count - nodes.names.length
  let shown = ''
  for (let i = 0; i < nodes.names.length; i++)
    shown = i === 0 ? clean(nodes.names[i]!) : `${shown}, ${clean(nodes.names[i]!)}`
  return more > 0 ? `${shown} and ${more} more` : shown
}

function sameNodes(a: NodeList, b: NodeList): boolean {
  if (a === b) return true
  if (a.count !== b.count || a.names.length !== b.names.length) return false
  for (let i = 0; i < a.names.length; i++) if (a.names[i] !== b.names[i]) return false
  return true
}

/**
 * The node lists one message has written, for the rest of that message: the containers of a
 * pod often hold, or lack, their images on the same nodes, and each line would clean and join
 * the same names again. One per warningsFor or denialMessage call; `remember` only when that
 * call writes more than one line (a single line has nothing to share).
 */
class NodeLists {
  /** Pairs of a list and its text; created at the first one remembered. */
  private written: Array<NodeList | string> | undefined

  constructor(private readonly remember: boolean) {}

  list(nodes: NodeList): string {
    if (!this.remember || nodes.count === 0) return list(nodes)
    const w = this.written
    if (w !== undefined)
      for (let i = 0; i < w.length; i += 2) if (sameNodes(w[i] as NodeList, nodes)) return w[i + 1] as string
    const text = list(nodes)
    if (w === undefined) this.written = [nodes, text]
    else if (w.length < 16) w.push(nodes, text)
    return text
  }
}

function nodesWord(n: number): string {
  return n === 1 ? '1 eligible node' : `${n} eligible nodes`
}

export function subjectText(s: Subject): string {
  return s.name === ''
    ? `this ${s.kind}`
    : `${s.kind} ${clean(s.namespace === '' ? s.name : `${s.namespace}/${s.name}`)}`
}

/** `imagePullPolicy: Never`, or the policy and the registry the nodes cannot pull from. */
function policyText(f: Finding): string {
  // An image volume's field is `pullPolicy` (spec.volumes[].image.pullPolicy).
  const field = f.container.kind === 'imageVolume' ? 'pullPolicy' : 'imagePullPolicy'
  if (f.registry === undefined) return `${field}: ${f.policy}`
  return `${field}: ${f.policy}; registry ${clean(f.registry)} is not pullable from the nodes`
}

/** What the kubelet reports when the image is missing. */
function failure(f: Finding): string {
  return f.policy === 'Never' ? 'ErrImageNeverPull' : 'ErrImagePull'
}

/** `containerd namespace "default"`: the place, in the words of `ctr -n`. */
function place(namespace: string): string {
  return `containerd namespace ${quote(namespace, 63)}`
}

/** Where the image is on eligible nodes, but out of the kubelet's sight. */
function wrongPlaceText(f: Finding): string {
  const first = f.wrongPlace[0]
  if (first === undefined) return ''
  const sameNamespace = f.wrongPlace.every((w) => w.namespace === first.namespace)
  const nodes = f.wrongPlace
    .map((w) => (sameNamespace ? clean(w.node) : `${clean(w.node)} (${place(w.namespace)})`))
    .join(', ')
  const more = f.wrongPlaceCount > f.wrongPlace.length ? ` and ${f.wrongPlaceCount - f.wrongPlace.length} more` : ''
  const where = sameNamespace ? ` in ${place(first.namespace)}` : ''
  return `; it is on ${nodes}${more}${where}, where the kubelet does not look (only k8s.io)`
}

// The commands of the fixes, in one place for denials, warnings, `explain` and `where`: the
// kubelet looks only in containerd namespace k8s.io.

/** Loads an image tarball where the kubelet looks: `ctr -n k8s.io images import` FILE. */
export const CTR_IMPORT = 'ctr -n k8s.io images import'

export function kindLoadCommand(image: string): string {
  return `kind load docker-image ${image}`
}

export function minikubeLoadCommand(image: string): string {
  return `minikube image load ${image}`
}

/** Keeps the image through the kubelet's image GC (containerd's pinned label). */
export function pinCommand(image: string): string {
  return `ctr -n k8s.io images label ${image} io.cri-containerd.pinned=pinned`
}

/** The way out when the registry is reachable: let the kubelet pull. */
export const MAY_PULL_FIX = 'set imagePullPolicy: IfNotPresent so the kubelet may pull it'

/** The exact commands that move an image into k8s.io on its node. */
export function moveCommand(w: Pick<WrongPlace, 'namespace' | 'name'>): string {
  const name = clean(w.name)
  return `ctr -n ${clean(w.namespace)} images export image.tar ${name} && ${CTR_IMPORT} image.tar`
}

/** The kubelet's image GC may delete the image where it is: which nodes, how full, the threshold. */
export function gcLine(f: Finding): string {
  const risk = f.gcRisk
  if (risk === undefined) return ''
  const first = risk.nodes[0]!
  const nodes = risk.nodes.map((n) => `${clean(n.node)} (${n.usedPercent}%)`).join(', ')
  const more = risk.count > risk.nodes.length ? ` and ${risk.count - risk.nodes.length} more` : ''
  const where =
    risk.count === 1
      ? `on ${clean(first.node)}, whose image filesystem is ${first.usedPercent}% full`
      : `on ${nodes}${more}`
  return (
    `${who(f.container)}: image ${quote(f.container.image)} (imagePullPolicy: ${f.policy}) is not pinned ${where} ` +
    `(the kubelet's image GC starts at ${risk.thresholdPercent}%): once unused it may be deleted and new pods fail with ${failure(f)}`
  )
}

/** How to keep the image through GC. */
function gcFix(findings: Finding[]): string {
  const images = imagesOf(findings)
  const img = images.length === 1 && images[0]!.length <= 48 ? images[0]! : 'IMAGE'
  return (
    `Protect it: pin it on those nodes (${pinCommand(img)}), ` +
    'free space on their image filesystem, or use imagePullPolicy: IfNotPresent with a registry the nodes can pull from'
  )
}

/** The one-line summary of a finding, used both in denials and as a warning. */
export function findingLine(f: Finding, subject: Subject): string {
  return writeFinding(f, subject, new NodeLists(false))
}

function writeFinding(f: Finding, subject: Subject, lists: NodeLists): string {
  const image = quote(f.container.image)
  const c = who(f.container)
  const policy = policyText(f)
  switch (f.reason) {
    case 'invalid-reference':
      return `${c}: image ${image} is not a valid image reference (${clean(f.error ?? 'invalid')}); the kubelet will fail with InvalidImageName`
    case 'unknown-node':
      return `${c}: node ${quote(f.nodeName ?? '')} is not in neverpull-guard's inventory, so image ${image} (${policy}) was not checked`
    case 'no-eligible-nodes':
      return `${c}: no node matches the nodeSelector, affinity and tolerations of ${subjectText(subject)}, so image ${image} was not checked`
    case 'unknown':
      return (
        `${c}: cannot confirm image ${image} (${policy}): ` +
        (f.missing.count > 0 ? `not on ${lists.list(f.missing)}; ` : '') +
        `${f.unknown.count} of ${nodesWord(f.eligible)} have no current image list (${lists.list(f.unknown)})` +
        wrongPlaceText(f)
      )
    case 'missing': {
      const elsewhere =
        f.elsewhere.count > 0 ? `; it is only on ${lists.list(f.elsewhere)}, which the placement excludes` : ''
      const hint = f.suggestions.length > 0 ? `; did you mean ${f.suggestions.join(', ')}?` : ''
      const where =
        f.eligible === 1
          ? `is not on the only eligible node (${lists.list(f.missing)})`
          : `is on none of the ${nodesWord(f.eligible)} (${lists.list(f.missing)})`
      const pull = f.policy === 'Never' ? '' : '; the kubelet would try to pull it and fail with ErrImagePull'
      return `${c}: image ${image} (${policy}) ${where}${wrongPlaceText(f)}${elsewhere}${pull}${hint}`
    }
    case 'partial': {
      const absent =
        f.missing.count > 0
          ? `missing on ${lists.list(f.missing)}`
          : `${f.unknown.count} without a current image list (${lists.list(f.unknown)})`
      const consequence =
        f.severity === 'deny'
          ? `its daemon pods there would fail with ${failure(f)}`
          : `pods placed elsewhere fail with ${failure(f)}`
      return `${c}: image ${image} (${policy}) is on ${f.present.count} of ${nodesWord(f.eligible)} (${lists.list(f.present)}), ${absent}${wrongPlaceText(f)}; ${consequence}`
    }
    case 'steered': {
      const those = f.present.count === 1 ? 'that node' : `those ${f.present.count} nodes`
      return `${c}: image ${image} (imagePullPolicy: Never) is on ${f.present.count} of ${nodesWord(f.eligible)} (${lists.list(f.present)}); this namespace steers its pods to ${those} (neverpull.dev/steer)`
    }
    case 'present':
      if (f.gcRisk !== undefined) return gcLine(f)
      return `${c}: image ${image} is on all ${nodesWord(f.eligible)}`
    case 'unpullable': {
      const held =
        f.presence === 'present'
          ? `; it is on all ${nodesWord(f.eligible)}, so imagePullPolicy: IfNotPresent would use it`
          : f.presence === 'missing'
            ? '; it is on none of the eligible nodes either: load it there and use imagePullPolicy: IfNotPresent'
            : '; use imagePullPolicy: IfNotPresent with the image loaded on the nodes'
      return (
        `${c}: image ${image} has imagePullPolicy: Always, but registry ${clean(f.registry ?? '')} is not pullable from the nodes: ` +
        `the kubelet contacts the registry on every start and fails with ErrImagePull${held}`
      )
    }
  }
}

/** The registries that matter for the fix lines: those the nodes cannot pull from. */
function unpullableRegistries(findings: Finding[]): string[] {
  let out: Set<string> | undefined
  for (const f of findings) if (f.registry !== undefined) (out ??= new Set()).add(clean(f.registry))
  return out === undefined ? [] : [...out]
}

/**
 * The distinct images the findings name, cleaned, up to two: the fixes need to know only
 * whether there are none, one (named in the command) or several.
 */
function imagesOf(findings: Finding[]): string[] {
  const out: string[] = []
  let first: string | undefined
  for (const f of findings) {
    if (f.reason === 'invalid-reference' || f.container.image === first) continue
    const image = clean(f.container.image)
    if (first === undefined) {
      first = f.container.image
      out.push(image)
    } else if (image !== out[0]) {
      out.push(image)
      break
    }
  }
  return out
}

/** Which runtimes the nodes that lack the image run: CRI-O loads with podman, not ctr. */
function loadRuntimes(findings: Finding[]): { crio: boolean; other: boolean } {
  let crio = false
  let other = false
  for (const f of findings) {
    if (f.missingOnCrio > 0) crio = true
    if (f.missing.count > f.missingOnCrio || f.unknown.count > 0) other = true
  }
  return { crio, other: other || !crio }
}

/** The fix as lines for a denial: every way out, spelled out. */
function fixLines(findings: Finding[]): string[] {
  const images = imagesOf(findings)
  const lines: string[] = []
  if (images.length > 0) {
    const img = images.length === 1 ? images[0]! : 'IMAGE'
    const registries = unpullableRegistries(findings)
    const always = findings.some((f) => f.reason === 'unpullable')
    const absent = findings.some((f) => f.reason !== 'unpullable' || f.presence !== 'present')
    lines.push('Fix, any one of:')
    const wrong = findings.find((f) => f.wrongPlace.length > 0)?.wrongPlace[0]
    if (wrong !== undefined) {
      lines.push(
        `- move it where the kubelet looks, on ${clean(wrong.node)} (and each node like it): ${moveCommand(wrong)}` +
          ` (kind: ${kindLoadCommand(img)}; minikube: ${minikubeLoadCommand(img)})`,
      )
    }
    if (absent) {
      const runtimes = loadRuntimes(findings)
      if (runtimes.other) {
        lines.push(
          `- load the image onto those nodes: ${kindLoadCommand(img)} | ${minikubeLoadCommand(img)} | ` +
            `${CTR_IMPORT} IMAGE.tar on each node (an image loaded only with docker load, ` +
            'or into another containerd namespace than k8s.io, is invisible to the kubelet)',
        )
      }
      if (runtimes.crio) {
        lines.push(
          `- on the CRI-O nodes: podman load -i IMAGE.tar as root on each node (CRI-O reads the host's containers-storage), ` +
            `or ${minikubeLoadCommand(img)}`,
        )
      }
    }
    if (always)
      lines.push(
        '- set imagePullPolicy: IfNotPresent (or Never) so the kubelet uses the copy on the node instead of the registry',
      )
    if (findings.some((f) => f.reason !== 'unpullable'))
      lines.push('- pin the pod to nodes that have the image (nodeSelector or node affinity)')
    if (registries.length === 0) lines.push(`- ${MAY_PULL_FIX}`)
    else {
      lines.push(
        `- push the image to a registry the nodes can pull from; or, if they can reach ${registries.join(', ')}, add it to the ` +
          "webhook's --pullable-registries or to the namespace annotation neverpull.dev/pullable-registries",
      )
    }
  }
  if (findings.some((f) => f.reason === 'invalid-reference')) {
    lines.push('Fix the image reference: [registry/]repository[:tag][@sha256:digest], repository in lowercase.')
  }
  return lines
}

/** The fix as one warning line; it comes first, so it reads as the heading of what follows. */
function fixWarning(findings: Finding[]): string {
  const images = imagesOf(findings)
  if (images.length === 0)
    return 'Fix the image reference below: [registry/]repository[:tag][@sha256:digest], repository in lowercase'
  const img = images.length === 1 && images[0]!.length <= 48 ? images[0]! : 'IMAGE'
  const wrong = findings.find((f) => f.wrongPlace.length > 0)?.wrongPlace[0]
  if (wrong !== undefined) {
    return `Fix: on ${clean(wrong.node)}, ${moveCommand(wrong)} (kind load docker-image and minikube image load put it in k8s.io)`
  }
  const registries = unpullableRegistries(findings)
  if (registries.length > 0) {
    const always = findings.some((f) => f.reason === 'unpullable')
    return (
      `Fix: ${always ? 'use imagePullPolicy: IfNotPresent with ' : 'load '}the image on the nodes ` +
      `(${kindLoadCommand(img)}, ${minikubeLoadCommand(img)}, or ${CTR_IMPORT}), ` +
      'or use a registry the nodes can pull from (see neverpull.dev/pullable-registries)'
    )
  }
  const runtimes = loadRuntimes(findings)
  const how = !runtimes.crio
    ? `${kindLoadCommand(img)}, ${minikubeLoadCommand(img)}, or ${CTR_IMPORT}`
    : runtimes.other
      ? `${kindLoadCommand(img)}, ${minikubeLoadCommand(img)}, ${CTR_IMPORT}, or podman load on CRI-O nodes`
      : `podman load -i IMAGE.tar as root on each CRI-O node, or ${minikubeLoadCommand(img)}`
  return (
    `To fix the imagePullPolicy: Never ${images.length === 1 ? 'image' : 'images'} below: load onto the nodes ` +
    `(${how}), pin the pod to nodes that have it, or use imagePullPolicy: IfNotPresent`
  )
}

const IDLE_WORDS: Record<string, string> = {
  'scaled-to-zero': 'is scaled to zero, so no pod runs yet; these images matter once it is scaled up',
  suspended: 'is suspended, so nothing runs yet; these images matter once it is resumed',
  paused: 'is paused, so no pod runs from this template yet; these images matter at kubectl rollout resume',
  'on-delete':
    'has updateStrategy OnDelete, so no pod is replaced now; these images matter for each pod deleted or added',
  partitioned:
    'has a partition at or above its replicas, so no pod is replaced now; these images matter once it is lowered',
  'template-only': 'only stores a template, so nothing runs from it; these images matter when pods are made from it',
}

/** Why the findings of this object warn instead of deny, as one line. */
export function noteLine(n: Note, subject: Subject): string {
  switch (n.reason) {
    case 'idle':
      return `${subjectText(subject)} ${IDLE_WORDS[n.detail] ?? 'runs nothing yet'}`
    case 'runtime-class-not-found':
      return (
        `RuntimeClass ${quote(n.detail, 63)} does not exist: the apiserver will reject the pods of ${subjectText(subject)} ` +
        `(pod rejected: RuntimeClass ${quote(n.detail, 63)} not found); create it or fix spec.runtimeClassName`
      )
    case 'runtime-class-unknown':
      return (
        `RuntimeClass ${quote(n.detail, 63)} is not in neverpull-guard's inventory, so its nodeSelector and tolerations ` +
        'could not be applied to the placement; nothing is denied for it'
      )
    case 'runtime-class-conflict':
      return `the RuntimeClass admission plugin will reject the pods of ${subjectText(subject)}: ${clean(n.detail)}`
    case 'namespace-unseen':
      return (
        `namespace ${quote(n.detail, 63)} is newer than neverpull-guard's list of namespaces, so its ${MODE_LABEL} label ` +
        'is not known yet: it warns instead of denying'
      )
    case 'toleration-operator':
      if (n.detail !== 'Lt' && n.detail !== 'Gt') {
        return `a toleration uses operator ${quote(n.detail, 20)}, which neverpull-guard does not know (Exists, Equal, Lt, Gt), so it warns instead of denying`
      }
      return (
        `a toleration uses operator ${quote(n.detail, 20)}, which only schedulers with TaintTolerationComparisonOperators ` +
        '(1.35+) serve; neverpull-guard cannot tell whether this one does, so it warns instead of denying'
      )
  }
}

/** Runes (code points) in s, as the apiserver counts warning text. */
export function runes(s: string): number {
  if (!SURROGATE.test(s)) return s.length
  let n = 0
  for (const _ of s) n++
  return n
}

const GROUP_WORDS: Record<Finding['reason'], string> = {
  missing: 'image on none of the eligible nodes',
  partial: 'image on only some eligible nodes',
  unknown: 'image not confirmed (node image lists not current)',
  'no-eligible-nodes': 'no node matches the placement, image not checked',
  'unknown-node': 'node not in the inventory, image not checked',
  'invalid-reference': 'not a valid image reference (InvalidImageName)',
  unpullable: 'image from a registry the nodes cannot pull from (ErrImagePull)',
  present: 'image on every eligible node',
  steered: 'image on some eligible nodes, where this namespace steers the pods (neverpull.dev/steer)',
}

/**
 * Too many findings to spell out within the budget: one line per kind of finding naming its
 * containers (with their images while they fit), split at 256 runes, and a count of any
 * that still do not fit.
 */
function groupedLines(warned: Finding[], budget: number): string[] {
  const reasons: Finding['reason'][] = []
  const byReason = new Map<Finding['reason'], Finding[]>()
  for (const f of warned) {
    let list = byReason.get(f.reason)
    if (list === undefined) {
      byReason.set(f.reason, (list = []))
      reasons.push(f.reason)
    }
    list.push(f)
  }
  const build = (withImages: boolean): { lines: string[]; named: number; used: number } => {
    const lines: string[] = []
    let named = 0
    let used = 0
    for (const reason of reasons) {
      const list = byReason.get(reason)!
      // Fixed words and a number: one rune per UTF-16 unit.
      const head = `${list.length} ${list.length === 1 ? 'container' : 'containers'}, ${GROUP_WORDS[reason]}: `
      const continued = `(continued) ${GROUP_WORDS[reason]}: `
      let line = head
      let lineRunes = head.length
      let count = 0
      const flush = (): void => {
        if (count === 0) return
        lines.push(line)
        used += lineRunes
        line = continued
        lineRunes = continued.length
        count = 0
      }
      for (const f of list) {
        const item = withImages ? `${who(f.container)} (${quote(f.container.image, 60)})` : who(f.container)
        // Fixed words around the name and image: plain ones (no character clean() rewrites,
        // none astral) leave one rune per unit, without scanning the item.
        const plain = !SPECIAL.test(f.container.name) && (!withImages || !SPECIAL.test(f.container.image))
        const itemRunes = plain ? item.length : runes(item)
        if (count > 0 && lineRunes + 2 + itemRunes > MAX_WARNING_RUNES) flush()
        const next = count === 0 ? item : `, ${item}`
        const nextRunes = count === 0 ? itemRunes : itemRunes + 2
        // Keep room for the closing "and N more" line.
        if (used + lineRunes + nextRunes > budget - 80) {
          flush()
          return { lines, named, used }
        }
        line += next
        lineRunes += nextRunes
        count++
        named++
      }
      flush()
    }
    return { lines, named, used }
  }
  let result = build(true)
  // `used` is the runes of the lines built.
  if (result.named < warned.length || result.used > budget) result = build(false)
  if (result.named < warned.length) {
    result.lines.push(`and ${warned.length - result.named} more containers like these`)
  }
  return result.lines.map((l) => cap(l))
}

/**
 * The denial message: a first line that stands on its own, then one line per finding and
 * the fix. kubectl prints it as is after "denied the request: ".
 */
export function denialMessage(decision: Decision, subject: Subject): string {
  const denied = decision.findings.filter((f) => f.severity === 'deny')
  const first = denied[0]
  if (first === undefined) return ''
  const lists = new NodeLists(denied.length > 1)
  const lines: string[] = []
  if (denied.length === 1) {
    lines.push(`${subjectText(subject)}: ${writeFinding(first, subject, lists)}`)
  } else {
    const named = denied.slice(0, NAMED_IN_SUMMARY).map((f) => `${who(f.container)} (${quote(f.container.image, 60)})`)
    if (denied.length > NAMED_IN_SUMMARY) named.push(`and ${denied.length - NAMED_IN_SUMMARY} more`)
    const policy = denied.every((f) => f.policy === 'Never') ? 'with imagePullPolicy: Never ' : ''
    lines.push(`${subjectText(subject)}: ${denied.length} containers ${policy}would fail: ${named.join(', ')}`)
    for (const f of denied.slice(0, DETAILED)) lines.push(`- ${writeFinding(f, subject, lists)}`)
    if (denied.length > DETAILED) lines.push(`- and ${denied.length - DETAILED} more containers like these`)
  }
  lines.push(...fixLines(denied))
  return lines.join('\n')
}

/** Whether a finding is told as a warning. A steering notice rides along: it is the only text kubectl shows. */
function warns(f: Finding, verdict: Decision['verdict']): boolean {
  return f.severity === 'warn' || f.reason === 'steered' || (f.severity === 'deny' && verdict !== 'deny')
}

/**
 * The warnings: why nothing was denied (notes), the fix, then one line per finding that is
 * not fine; each one line of at most 256 runes, and all together within the apiserver's
 * 4,096-rune budget. The fix comes first so that it survives even when other admission
 * plugins' warnings share the budget; when the findings do not fit one line each, they are
 * grouped, still naming every container that fits.
 */
export function warningsFor(decision: Decision, subject: Subject): string[] {
  if (decision.mode === 'audit' || decision.mode === 'off') return []
  // The common case (no finding, no note) without building the empty parts below.
  if (decision.findings.length === 0 && decision.notes.length === 0) return []
  const warned: Finding[] = []
  for (const f of decision.findings) if (warns(f, decision.verdict)) warned.push(f)
  // Every image in place, nothing to note (an allowed pod): nothing to write.
  if (warned.length === 0 && decision.notes.length === 0) return []
  const head: string[] = []
  const tail: string[] = []
  // Runes of the lines cut and kept; a line cap() cut has exactly MAX_WARNING_RUNES, uncounted.
  let fixed = 0
  const keep = (lines: string[], text: string): void => {
    const line = cap(text)
    lines.push(line)
    fixed += line === text ? runes(line) : MAX_WARNING_RUNES
  }
  for (const n of decision.notes) keep(head, noteLine(n, subject))
  const actionable = warned.filter(
    (f) =>
      f.reason === 'missing' || f.reason === 'partial' || f.reason === 'invalid-reference' || f.reason === 'unpullable',
  )
  if (actionable.length > 0) keep(head, fixWarning(actionable))
  // No node fits: why, once, after the findings, in the words `kubectl describe pod` will show.
  const unplaced = warned.find((f) => f.reason === 'no-eligible-nodes' && f.scheduler !== undefined)
  if (unplaced !== undefined)
    keep(tail, `${subjectText(subject)}: kube-scheduler will report: ${clean(unplaced.scheduler!)}`)
  const atRisk = warned.filter((f) => f.gcRisk !== undefined)
  if (atRisk.length > 0) keep(head, gcFix(atRisk))
  const budget = MAX_WARNINGS_TOTAL_RUNES - fixed
  // One line per finding while they all fit, else grouping. A line counts as min(256, its
  // runes), which lies between half its UTF-16 length and its length (a rune is one or two
  // units), and is 256 for a line of more than 512 units: the lengths alone, without cutting
  // or counting, mostly tell. A line is written in full only when kept; the first pass stops
  // as soon as the lines cannot fit (20 findings of 256 runes never do).
  const texts: string[] = []
  let least = 0
  let most = 0
  const add = (text: string): void => {
    texts.push(text)
    const n = text.length
    least += n > 2 * MAX_WARNING_RUNES ? MAX_WARNING_RUNES : Math.min(MAX_WARNING_RUNES, Math.ceil(n / 2))
    most += Math.min(MAX_WARNING_RUNES, n)
  }
  const lists = new NodeLists(warned.length > 1)
  for (const f of warned) {
    add(writeFinding(f, subject, lists))
    if (f.gcRisk !== undefined && f.reason !== 'present') add(gcLine(f))
    if (least > budget) return head.concat(groupedLines(warned, budget), tail)
  }
  const detailed = texts.map((text) => cap(text))
  if (most > budget) {
    // In between: count. A line cap() cut has exactly MAX_WARNING_RUNES runes.
    let used = 0
    for (let i = 0; i < texts.length; i++) {
      const line = detailed[i]!
      used += line === texts[i] ? runes(line) : MAX_WARNING_RUNES
      if (used > budget) return head.concat(groupedLines(warned, budget), tail)
    }
  }
  return head.concat(detailed, tail)
}
