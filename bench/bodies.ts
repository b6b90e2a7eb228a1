import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FixtureContainer, FixtureReview } from '../test/helpers/fixtures.js'
import { COMMON_REFS, partialRef, PARTIAL_IMAGES, POOLS, poolRef, tailRef } from './inventory.js'

// AdmissionReview bodies for the load runs, built from the apiserver captures in
// test/fixtures/admission: envelope, managedFields, defaulted fields and annotations are kept
// as the apiserver sends them; only the pod spec's images and placement are pointed at the
// synthetic cluster, so the allow bodies are allowed for the right reason (image on every
// eligible node) and the deny body is denied with "did you mean" suggestions.

const FIXTURES = fileURLToPath(new URL('../test/fixtures/admission/', import.meta.url))

function fixture(name: string): FixtureReview {
  return JSON.parse(readFileSync(FIXTURES + name, 'utf8')) as FixtureReview
}

function container(name: string, image: string, pullPolicy: string): FixtureContainer {
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
function podNever(): FixtureReview {
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
function deploymentAffinity(): FixtureReview {
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
function daemonSet(): FixtureReview {
  const review = fixture('daemonset-create.json')
  const spec = review['request'].object.spec.template.spec
  spec.containers = [container('agent', COMMON_REFS[12]!, 'Never')]
  return review
}

/** The common case: a Pod with no Never container (the fixture's own containers, IfNotPresent/Always). */
function podPlain(): FixtureReview {
  const review = fixture('pod-create.json')
  const spec = review['request'].object.spec
  for (const c of [...(spec.initContainers ?? []), ...spec.containers])
    c.imagePullPolicy = (c.image ?? '').includes(':') ? 'IfNotPresent' : 'Always'
  return review
}

/**
 * Denied: a Pod pinned to the compute pool asking for a release of a team app that no node
 * holds. The repository has hundreds of tags on the nodes, so "did you mean" ranks them all.
 */
function podDeny(): FixtureReview {
  const review = fixture('pod-create.json')
  const spec = review['request'].object.spec
  delete spec.affinity
  delete spec.initContainers
  spec.nodeSelector = { 'node-pool': 'compute' }
  const known = tailRef(1) // registry.example.com/search/api:0.0.1
  spec.containers = [container('api', known.replace(/:[^:]+$/, ':9.99.9'), 'Never')]
  return review
}

/**
 * Warned: a Pod of three Never containers on the general pool, two of whose images were
 * preloaded on half of its nodes (pods placed elsewhere fail with ErrImageNeverPull).
 */
function podWarn(): FixtureReview {
  const review = podNever()
  const spec = review['request'].object.spec
  spec.containers[0].image = partialRef(0)
  spec.containers[1]!.image = partialRef(1)
  return review
}

/** Warned: a Deployment (no placement constraints) whose image is on half the nodes. */
function deploymentWarn(): FixtureReview {
  const review = fixture('deployment-create.json')
  const spec = review['request'].object.spec.template.spec
  delete spec.affinity
  delete spec.nodeSelector
  spec.containers = [container('api', partialRef(2), 'Never')]
  return review
}

/**
 * Warned, the budget path: a Pod of 20 Never containers, each image on half of the nodes, so
 * that every container has a finding and the warnings must fit the apiserver's 4,096 runes.
 */
function podWarn20(): FixtureReview {
  const review = podNever()
  const spec = review['request'].object.spec
  spec.containers = [
    container('step-0', partialRef(0), 'Never'),
    ...Array.from({ length: PARTIAL_IMAGES - 1 }, (_, k) => container(`step-${k + 1}`, partialRef(k + 1), 'Never')),
  ]
  return review
}

export interface Body {
  name: string
  /** What the webhook should answer: allowed silently, allowed with warnings, or denied. */
  expect: 'allow' | 'warn' | 'deny'
  payload: string
}

export function loadBodies(): Body[] {
  const body = (name: string, expect: Body['expect'], review: FixtureReview): Body => ({
    name,
    expect,
    payload: JSON.stringify(review),
  })
  return [
    body('pod-3-never-nodeSelector', 'allow', podNever()),
    body('deployment-affinity', 'allow', deploymentAffinity()),
    body('daemonset', 'allow', daemonSet()),
    body('pod-no-never', 'allow', podPlain()),
    body('pod-warn-partial', 'warn', podWarn()),
    body('deployment-warn-partial', 'warn', deploymentWarn()),
    body('pod-warn-20-containers', 'warn', podWarn20()),
    body('pod-deny-did-you-mean', 'deny', podDeny()),
  ]
}

/** The body of that name (the micro-benchmarks pick theirs by name). */
export function bodyNamed(bodies: Body[], name: string): Body {
  const found = bodies.find((b) => b.name === name)
  if (found === undefined) throw new Error(`no bench body ${name}`)
  return found
}
