import { microTime, parseKubeTime } from '../api/time.js'
import { createObject, getObject, namespacedPath, replaceObject } from '../kube/api.js'
import type { KubeHttp } from '../kube/http.js'
import { ApiStatusError } from '../kube/status.js'

// One replica audits at a time: a coordination.k8s.io Lease, held by renewing it, taken
// over only once its holder stopped renewing for a whole lease duration (as client-go's
// leaderelection does, with the resourceVersion guarding every write).
// acquireTime and renewTime are MicroTimes: the apiserver refuses any other number of
// fractional digits than six, so they are written as strings of that form (a client library
// would send a Date as `toISOString()`, three digits) and read in whatever form they come.

export interface LeaseOptions {
  http: KubeHttp
  namespace: string
  name: string
  identity: string
  durationMs: number
}

/** coordination.k8s.io/v1 Lease, the fields read and written here; the rest is kept as read. */
interface Lease {
  metadata?: Record<string, unknown>
  spec?: {
    holderIdentity?: string
    leaseDurationSeconds?: number
    acquireTime?: string
    renewTime?: string
    leaseTransitions?: number
    [field: string]: unknown
  }
  [field: string]: unknown
}

function code(err: unknown): number | undefined {
  return err instanceof ApiStatusError ? err.code : undefined
}

const micro = microTime

export class LeaseElector {
  private leader = false

  constructor(private readonly options: LeaseOptions) {}

  isLeader(): boolean {
    return this.leader
  }

  /** One election round: acquire, renew or observe. Returns whether this replica leads now. */
  async tick(now: number): Promise<boolean> {
    const { http, namespace, name, identity, durationMs } = this.options
    const seconds = Math.max(1, Math.round(durationMs / 1000))
    const path = namespacedPath('coordination.k8s.io/v1', namespace, 'leases', name)
    let lease: Lease
    try {
      lease = await getObject(http, path)
    } catch (err) {
      if (code(err) !== 404) throw err
      try {
        await createObject(http, namespacedPath('coordination.k8s.io/v1', namespace, 'leases'), {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: seconds,
            acquireTime: micro(now),
            renewTime: micro(now),
            leaseTransitions: 0,
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
    const expired =
      holder === '' || Number.isNaN(renewed) || renewed + (spec.leaseDurationSeconds ?? seconds) * 1000 < now
    if (holder !== identity && !expired) return (this.leader = false)
    const takeover = holder !== identity
    const next: Lease = {
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
      await replaceObject(http, path, next)
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
    const { http, namespace, name, identity } = this.options
    const path = namespacedPath('coordination.k8s.io/v1', namespace, 'leases', name)
    try {
      const lease = (await getObject(http, path)) as Lease
      if (lease.spec?.holderIdentity !== identity) return
      await replaceObject(http, path, { ...lease, spec: { ...lease.spec, holderIdentity: '' } })
    } catch {
      // Best effort: the lease expires by itself.
    }
  }
}
