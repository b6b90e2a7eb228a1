import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { COMMON_REFS, POOLS, poolRef, tailRef } from './inventory.js'

// AdmissionReview bodies for the load runs, built from the apiserver captures in
// test/fixtures/admission: envelope, managedFields, defaulted fields and annotations are kept
// as the apiserver sends them; only the pod spec's images and placement are pointed at the
// synthetic cluster, so the allow bodies are allowed for the right reason (image on every
// eligible node) and the deny body is denied with "did you mean" suggestions.

const FIXTURES = fileURLToPath(new URL('../test/fixtures/admission/', import.meta.url))

type Json = Record<string, any>

function fixture(name: string): Json {
  return JSON.parse(readFileSync(FIXTURES + name, 'utf8')) as Json
}

function container(name: string, image: string, pullPolicy: string): Json {
  return {
    name,
    image,
    resources: { requests: { cpu: '100m', memory: '128Mi' } },
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: pullPolicy,
  }
}

function shortRef(ref: string): string {
  return ref.startsWith('docker.io/library/') ? ref.slice('docker.io/library/'.length) : ref
}

const GENERAL = POOLS.indexOf('general')
const COMPUTE = POOLS.indexOf('compute')

/** Pod, 3 Never containers (two images of the general pool, one on every node), nodeSelector on pool and zone. */
function podNever(): Json {
  const review = fixture('pod-create.json')
  const spec = review['request'].object.spec
  delete spec.affinity
  delete spec.initContainers
  spec.nodeSelector = { 'node-pool': 'general', 'topology.kubernetes.io/zone': 'eu-west-1b' }
  spec.containers = [
    container('app', poolRef(GENERAL, 0), 'Never'),
    container('worker', poolRef(GENERAL, 1), 'Never'),
    container('log-shipper', shortRef(COMMON_REFS[16]!), 'Never'),
  ]
  return review
}

/** Deployment with required node affinity (pools In, arch In, capacity NotIn); its image is on those pools. */
function deploymentAffinity(): Json {
  const review = fixture('deployment-create.json')
  const spec = review['request'].object.spec.template.spec
  spec.affinity = {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [
          {
            matchExpressions: [
              { key: 'node-pool', operator: 'In', values: ['compute'] },
              { key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] },
              { key: 'eks.amazonaws.com/capacityType', operator: 'NotIn', values: ['SPOT'] },
            ],
          },
        ],
      },
    },
  }
  spec.containers = [container('api', poolRef(COMPUTE, 3), 'Never')]
  return review
}

/** DaemonSet whose image is on every node. */
function daemonSet(): Json {
  const review = fixture('daemonset-create.json')
  const spec = review['request'].object.spec.template.spec
  spec.containers = [container('agent', COMMON_REFS[12]!, 'Never')]
  return review
}

/** The common case: a Pod with no Never container (the fixture's own containers, IfNotPresent/Always). */
function podPlain(): Json {
  const review = fixture('pod-create.json')
  const spec = review['request'].object.spec
  for (const c of [...spec.initContainers, ...spec.containers]) c.imagePullPolicy = c.image.includes(':') ? 'IfNotPresent' : 'Always'
  return review
}

/**
 * Denied: a Pod pinned to the compute pool asking for a release of a team app that no node
 * holds. The repository has hundreds of tags on the nodes, so "did you mean" ranks them all.
 */
function podDeny(): Json {
  const review = fixture('pod-create.json')
  const spec = review['request'].object.spec
  delete spec.affinity
  delete spec.initContainers
  spec.nodeSelector = { 'node-pool': 'compute' }
  const known = tailRef(1) // registry.example.com/search/api:0.0.1
  spec.containers = [container('api', known.replace(/:[^:]+$/, ':9.99.9'), 'Never')]
  return review
}

export interface Body {
  name: string
  /** What the webhook should answer. */
  expect: 'allow' | 'deny'
  payload: string
}

export function loadBodies(): { allow: Body[]; deny: Body } {
  const allow: Body[] = [
    { name: 'pod-3-never-nodeSelector', expect: 'allow', payload: JSON.stringify(podNever()) },
    { name: 'deployment-affinity', expect: 'allow', payload: JSON.stringify(deploymentAffinity()) },
    { name: 'daemonset', expect: 'allow', payload: JSON.stringify(daemonSet()) },
    { name: 'pod-no-never', expect: 'allow', payload: JSON.stringify(podPlain()) },
  ]
  const deny: Body = { name: 'pod-deny-did-you-mean', expect: 'deny', payload: JSON.stringify(podDeny()) }
  return { allow, deny }
}
