import type { InventorySink, NodeFacts, NodeImages, RuntimeImage, RuntimeInfo, Taint } from '../src/api/types.js'

// Types only from src/: the server child runs this file compiled without tsx (bench/load.ts),
// and builds its index with the webhook's own compiled code.

// A synthetic cluster, the same for the same seed: nodes with the labels and taints a managed
// cloud cluster carries, and per-node image lists shaped like containerd's CRI ListImages
// (normalised repo tags and digests, `sha256:` config-digest IDs). Each node holds:
//   COMMON images on every node (pause, kube-proxy, CNI, CSI, the neverpull agent ...),
//   POOL_IMAGES images of its node pool (on every node of the pool),
//   PARTIAL_IMAGES images on half of the nodes (in place of as many tail images),
//   and the rest drawn from a long tail, each tail image on a few dozen nodes.
// Distinct images = COMMON + pools x POOL_IMAGES + tail, exactly as asked.

export interface ClusterSpec {
  nodes: number
  imagesPerNode: number
  distinctImages: number
  seed?: number
}

export const COMMON = 20
export const POOL_IMAGES = 30
/**
 * Images preloaded on every second node (`kind load --nodes`, a pre-pulled release on part
 * of a pool): the warned bodies ask for these, present on half of their eligible nodes.
 */
export const PARTIAL_IMAGES = 20
export const POOLS = ['general', 'general-arm', 'compute', 'memory', 'batch', 'ingress', 'system', 'gpu'] as const
export const ZONES = ['eu-west-1a', 'eu-west-1b', 'eu-west-1c', 'eu-west-1d'] as const
const INSTANCE_TYPES: Record<(typeof POOLS)[number], readonly string[]> = {
  general: ['m6i.2xlarge', 'm6i.4xlarge'],
  'general-arm': ['m7g.2xlarge', 'm7g.4xlarge'],
  compute: ['c6i.4xlarge', 'c6i.8xlarge'],
  memory: ['r6i.4xlarge'],
  batch: ['m6i.8xlarge', 'c6i.8xlarge'],
  ingress: ['c6in.2xlarge'],
  system: ['m6i.xlarge'],
  gpu: ['g5.4xlarge', 'p4d.24xlarge'],
}
/** Share of nodes per pool (sums to 1): gpu is 5%. */
const POOL_SHARE = [0.4, 0.1, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05]

export const GPU_TAINT: Taint = { key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' }
const RUNTIME: RuntimeInfo = {
  name: 'containerd',
  version: '1.7.24',
  endpoint: 'unix:///run/containerd/containerd.sock',
}

/** mulberry32: small, fast, good enough to lay out a cluster. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** 64 hex characters derived from (kind, n): deterministic, distinct, looks like a sha256. */
export function hex64(kind: number, n: number): string {
  let out = ''
  let x = (Math.imul(kind + 1, 0x9e3779b1) ^ Math.imul(n + 1, 0x85ebca6b)) >>> 0
  for (let i = 0; i < 8; i++) {
    x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0
    x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0
    x = (x ^ (x >>> 16) ^ (i * 0x27d4eb2f)) >>> 0
    out += x.toString(16).padStart(8, '0')
  }
  return out
}

const LIBRARY = [
  'nginx',
  'redis',
  'postgres',
  'busybox',
  'alpine',
  'python',
  'node',
  'golang',
  'memcached',
  'rabbitmq',
  'mysql',
  'mongo',
  'httpd',
  'haproxy',
  'traefik',
  'eclipse-temurin',
  'ubuntu',
  'debian',
  'envoyproxy',
  'elasticsearch',
]
const TEAMS = [
  'payments',
  'search',
  'checkout',
  'identity',
  'ledger',
  'catalog',
  'ml',
  'platform',
  'data',
  'growth',
  'ads',
  'media',
]
const APPS = [
  'api',
  'worker',
  'web',
  'gateway',
  'indexer',
  'scheduler',
  'exporter',
  'consumer',
  'migrator',
  'cron',
  'ingest',
  'render',
  'cache',
  'auth',
  'notifier',
  'billing',
]

export const COMMON_REFS: readonly string[] = [
  'registry.k8s.io/pause:3.9',
  'registry.k8s.io/kube-proxy:v1.30.4',
  'registry.k8s.io/coredns/coredns:v1.11.1',
  'registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.11.1',
  'registry.k8s.io/sig-storage/livenessprobe:v2.13.1',
  'registry.k8s.io/metrics-server/metrics-server:v0.7.1',
  'docker.io/calico/node:v3.28.1',
  'docker.io/calico/cni:v3.28.1',
  'docker.io/calico/pod2daemon-flexvol:v3.28.1',
  'docker.io/fluent/fluent-bit:3.1.7',
  'quay.io/prometheus/node-exporter:v1.8.2',
  'public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.34.0',
  'registry.example.com/platform/neverpull-agent:0.1.0',
  'registry.example.com/platform/node-problem-detector:0.8.19',
  'docker.io/library/busybox:1.36',
  'docker.io/library/alpine:3.20',
  'registry.example.com/platform/log-shipper:2.4.0',
  'registry.example.com/platform/istio-proxy:1.22.3',
  'registry.example.com/platform/secrets-csi:1.4.5',
  'registry.example.com/platform/dns-cache:1.23.1',
]

/** Pool image p of pool `pool`: `registry.example.com/<team>/<app>:<version>`. */
export function poolRef(pool: number, p: number): string {
  const team = TEAMS[(pool * 3 + p) % TEAMS.length]!
  const app = APPS[(pool * 7 + p) % APPS.length]!
  return `registry.example.com/${team}/${app}-${POOLS[pool]}:1.${p}.${pool}`
}

/** Half of the nodes, alternating in blocks of one node per zone, so every pool and zone gets half. */
export function hasPartial(i: number): boolean {
  return Math.floor(i / ZONES.length) % 2 === 0
}

/** Partial image k: on the nodes hasPartial picks, whatever their pool. */
export function partialRef(k: number): string {
  return `registry.example.com/preloaded/${APPS[k % APPS.length]!}-${k}:2.0.${k}`
}

/** Tail image t: library images with many tags, and team apps with many releases. */
export function tailRef(t: number): string {
  if (t % 10 === 0) {
    const lib = LIBRARY[(t / 10) % LIBRARY.length]!
    const v = Math.floor(t / 10 / LIBRARY.length)
    return `docker.io/library/${lib}:${Math.floor(v / 100)}.${v % 100}`
  }
  const team = TEAMS[t % TEAMS.length]!
  const app = APPS[Math.floor(t / TEAMS.length) % APPS.length]!
  const release = Math.floor(t / (TEAMS.length * APPS.length))
  return `registry.example.com/${team}/${app}:${Math.floor(release / 50)}.${release % 50}.${t % 7}`
}

const hexCache = new Map<number, string>()

function cachedHex(kind: number, n: number): string {
  const k = n * 4 + kind
  let h = hexCache.get(k)
  if (h === undefined) hexCache.set(k, (h = hex64(kind, n)))
  return h
}

/** Drops the generator's memo of digests, so a heap measurement sees only the index. */
export function clearGeneratorCaches(): void {
  hexCache.clear()
}

/** How containerd lists an image pulled by that reference. */
export function runtimeImage(ref: string, n: number): RuntimeImage {
  const colon = ref.lastIndexOf(':')
  const repo = ref.slice(0, colon)
  return {
    id: `sha256:${cachedHex(1, n)}`,
    repoTags: [ref],
    repoDigests: [`${repo}@sha256:${cachedHex(2, n)}`],
    size: 5_000_000 + ((n * 7919) % 500_000_000),
    pinned: n < COMMON,
  }
}

export interface Layout {
  spec: Required<ClusterSpec>
  tail: number
  tailPerNode: number
  poolOf: Uint8Array
  /** Nodes in the order the tail blocks are dealt to them. */
  order: Uint32Array
}

export function layout(spec: ClusterSpec): Layout {
  const full = { seed: 42, ...spec }
  const random = prng(full.seed)
  const tail = full.distinctImages - COMMON - POOLS.length * POOL_IMAGES - PARTIAL_IMAGES
  const tailPerNode = full.imagesPerNode - COMMON - POOL_IMAGES
  if (tail <= 0 || tailPerNode <= PARTIAL_IMAGES || tailPerNode > tail)
    throw new Error(`cannot lay out ${JSON.stringify(spec)}`)
  const poolOf = new Uint8Array(full.nodes)
  for (let i = 0; i < full.nodes; i++) {
    let r = random()
    let p = 0
    while (p < POOL_SHARE.length - 1 && r >= POOL_SHARE[p]!) r -= POOL_SHARE[p++]!
    poolOf[i] = p
  }
  const order = new Uint32Array(full.nodes)
  for (let i = 0; i < full.nodes; i++) order[i] = i
  for (let i = full.nodes - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const t = order[i]!
    order[i] = order[j]!
    order[j] = t
  }
  return { spec: full, tail, tailPerNode, poolOf, order }
}

export function nodeName(i: number): string {
  return `ip-10-${(i >> 8) & 255}-${i & 255}-${(i * 37) % 250}.eu-west-1.compute.internal`
}

export function nodeFacts(l: Layout, i: number): NodeFacts {
  const pool = l.poolOf[i]!
  const poolName = POOLS[pool]!
  const types = INSTANCE_TYPES[poolName]
  const zone = ZONES[i % ZONES.length]!
  const arch = poolName === 'general-arm' ? 'arm64' : 'amd64'
  const name = nodeName(i)
  const labels: Record<string, string> = {
    'beta.kubernetes.io/arch': arch,
    'beta.kubernetes.io/instance-type': types[i % types.length]!,
    'beta.kubernetes.io/os': 'linux',
    'eks.amazonaws.com/capacityType': i % 5 === 0 ? 'SPOT' : 'ON_DEMAND',
    'eks.amazonaws.com/nodegroup': `${poolName}-${i % 3}`,
    'failure-domain.beta.kubernetes.io/region': 'eu-west-1',
    'failure-domain.beta.kubernetes.io/zone': zone,
    'kubernetes.io/arch': arch,
    'kubernetes.io/hostname': name,
    'kubernetes.io/os': 'linux',
    'node.kubernetes.io/instance-type': types[i % types.length]!,
    'node-pool': poolName,
    'topology.kubernetes.io/region': 'eu-west-1',
    'topology.kubernetes.io/zone': zone,
  }
  const taints: Taint[] = []
  if (poolName === 'gpu') {
    labels['nvidia.com/gpu.present'] = 'true'
    taints.push(GPU_TAINT)
  }
  if (poolName === 'system') taints.push({ key: 'CriticalAddonsOnly', value: 'true', effect: 'PreferNoSchedule' })
  // A few cordoned nodes (drains in progress): 0.4%.
  const cordoned = i % 250 === 17
  if (cordoned) taints.push({ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' })
  // Node.status.images: the kubelet reports at most 50, biggest first, each with digest and tag.
  const statusImageNames: string[] = []
  const images = nodeImageRefs(l, i)
  for (let k = 0; k < 50 && k < images.length; k++) {
    const { ref, n } = images[k]!
    const img = runtimeImage(ref, n)
    statusImageNames.push(img.repoDigests[0]!, ref)
  }
  return fresh({ name, labels, taints, unschedulable: cordoned, ready: true, statusImageNames })
}

/**
 * Every string a fresh object, as the informer's JSON.parse of each watch event gives: the
 * index then holds what it would hold in a cluster, not strings shared by the generator.
 */
function fresh<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T
}

/** Image numbers: 0..COMMON-1 common, then pool images, then the tail, then partial images. */
export function nodeImageRefs(l: Layout, i: number): Array<{ ref: string; n: number }> {
  const out: Array<{ ref: string; n: number }> = []
  for (let c = 0; c < COMMON; c++) out.push({ ref: COMMON_REFS[c]!, n: c })
  const pool = l.poolOf[i]!
  for (let p = 0; p < POOL_IMAGES; p++) out.push({ ref: poolRef(pool, p), n: COMMON + pool * POOL_IMAGES + p })
  // Tail blocks dealt round the shuffled node order: every tail image lands on
  // nodes x tailPerNode / tail nodes (a few dozen), none twice on one node.
  const position = l.order[i]!
  const start = (position * l.tailPerNode) % l.tail
  const base = COMMON + POOLS.length * POOL_IMAGES
  const partial = hasPartial(i) ? PARTIAL_IMAGES : 0
  for (let k = 0; k < l.tailPerNode - partial; k++) {
    const t = (start + k) % l.tail
    out.push({ ref: tailRef(t), n: base + t })
  }
  for (let k = 0; k < partial; k++) out.push({ ref: partialRef(k), n: base + l.tail + k })
  return out
}

export function nodeImages(l: Layout, i: number, observedAt: number): NodeImages {
  return {
    ...fresh({
      nodeName: nodeName(i),
      runtime: RUNTIME,
      images: nodeImageRefs(l, i).map(({ ref, n }) => runtimeImage(ref, n)),
    }),
    observedAt,
  }
}

/**
 * Loads the cluster into a fresh index through the same calls the informers make, one node
 * at a time, so no generated object outlives its upsert (the heap then holds only the index).
 */
export function loadCluster(sink: InventorySink, spec: ClusterSpec, observedAt: number): Layout {
  const l = layout(spec)
  for (let i = 0; i < l.spec.nodes; i++) {
    sink.upsertNode(nodeFacts(l, i))
    sink.upsertImages(nodeImages(l, i, observedAt))
  }
  clearGeneratorCaches()
  return l
}

/** Index of the first node of a pool, or -1. */
export function firstNodeOf(l: Layout, pool: number): number {
  for (let i = 0; i < l.poolOf.length; i++) if (l.poolOf[i] === pool) return i
  return -1
}
