import type { CoordinationV1Api, V1Lease, V1MicroTime } from '@kubernetes/client-node'
import { microTime, parseKubeTime } from '../api/time.js'

// One replica audits at a time: a coordination.k8s.io Lease, held by renewing it, taken
// over only once its holder stopped renewing for a whole lease duration (as client-go's
// leaderelection does, with the resourceVersion guarding every write).
// acquireTime and renewTime are MicroTimes: the apiserver refuses any other number of
// fractional digits than six, so they are written as strings of that form (client-node would
// send a Date as `toISOString()`, three digits) and read in whatever form they come.

export interface LeaseOptions {
  api: CoordinationV1Api
  namespace: string
  name: string
  identity: string
  durationMs: number
}

function code(err: unknown): number | undefined {
  const c = (err as { code?: unknown }).code
  return typeof c === 'number' ? c : undefined
}

/**
 * A MicroTime the client library passes through unchanged: it types the field as a Date but
 * serialises a string as is.
 */
function micro(ms: number): V1MicroTime {
  return microTime(ms) as unknown as V1MicroTime
}

export class LeaseElector {
  private leader = false

  constructor(private readonly options: LeaseOptions) {}

  isLeader(): boolean {
    return this.leader
  }

  /** One election round: acquire, renew or observe. Returns whether this replica leads now. */
  async tick(now: number): Promise<boolean> {
    const { api, namespace, name, identity, durationMs } = this.options
    const seconds = Math.max(1, Math.round(durationMs / 1000))
    let lease: V1Lease
    try {
      lease = await api.readNamespacedLease({ name, namespace })
    } catch (err) {
      if (code(err) !== 404) throw err
      try {
        await api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds: seconds, acquireTime: micro(now), renewTime: micro(now), leaseTransitions: 0 },
          },
        })
        return (this.leader = true)
      } catch (createErr) {
        if (code(createErr) === 409) return (this.leader = false)
        throw createErr
      }
    }
    const spec = lease.spec ?? {}
    const holder = spec.holderIdentity ?? ''
    const renewed = parseKubeTime(spec.renewTime)
    const expired = holder === '' || Number.isNaN(renewed) || renewed + (spec.leaseDurationSeconds ?? seconds) * 1000 < now
    if (holder !== identity && !expired) return (this.leader = false)
    const takeover = holder !== identity
    const next: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: seconds,
        renewTime: micro(now),
        ...(takeover ? { acquireTime: micro(now), leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
      },
    }
    try {
      await api.replaceNamespacedLease({ name, namespace, body: next })
      return (this.leader = true)
    } catch (err) {
      if (code(err) === 409) return (this.leader = false)
      throw err
    }
  }

  /** Gives the lease up so another replica need not wait for it to expire. */
  async release(): Promise<void> {
    if (!this.leader) return
    this.leader = false
    const { api, namespace, name, identity } = this.options
    try {
      const lease = await api.readNamespacedLease({ name, namespace })
      if (lease.spec?.holderIdentity !== identity) return
      await api.replaceNamespacedLease({ name, namespace, body: { ...lease, spec: { ...lease.spec, holderIdentity: '' } } })
    } catch {
      // Best effort: the lease expires by itself.
    }
  }
}
