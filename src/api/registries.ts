// Which registries the nodes can pull from (air-gapped and restricted clusters): the
// webhook's --pullable-registries, or a namespace's annotation. A registry is the domain of
// a normalised reference (`nginx` is `docker.io`, src/image/registry.ts), compared exactly
// with its port: `localhost` and `localhost:5000` are two registries, as they are to containerd.

export const PULLABLE_REGISTRIES_ANNOTATION = 'neverpull.dev/pullable-registries'

export interface PullableRegistries {
  /** `*`: every registry; nothing is checked. */
  readonly any: boolean
  /** Normalised hosts, with their ports when written (`registry.corp:5000`, `docker.io`). */
  readonly hosts: ReadonlySet<string>
  /** The list as messages show it: `*`, `none` or the hosts joined by commas. */
  readonly text: string
}

export const ANY_REGISTRY: PullableRegistries = Object.freeze({ any: true, hosts: new Set<string>(), text: '*' })

const DOCKER_HUB = 'docker.io'
// Docker Hub's other names, which distribution and containerd treat as docker.io.
const DOCKER_HUB_ALIASES: ReadonlySet<string> = new Set(['index.docker.io', 'registry-1.docker.io'])
const HOST =
  /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[a-f0-9:]+\])(?::[0-9]{1,5})?$/

/** A registry host as references name it: lowercase, Docker Hub's aliases folded into docker.io. */
export function normaliseRegistry(host: string): string {
  const lower = host.toLowerCase()
  return DOCKER_HUB_ALIASES.has(lower) ? DOCKER_HUB : lower
}

export type ParsedRegistries = { ok: true; value: PullableRegistries } | { ok: false; error: string }

/**
 * `*` (any), `none` (no registry at all: a fully air-gapped cluster), or comma-separated
 * hosts with optional ports: `registry.corp:5000, localhost:5000, docker.io`.
 */
export function parsePullableRegistries(text: string): ParsedRegistries {
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '')
  if (entries.length === 0) {
    return { ok: false, error: 'empty: list registry hosts (registry.corp:5000,docker.io), or * for any, or none' }
  }
  if (entries.includes('*')) return { ok: true, value: ANY_REGISTRY }
  const hosts = new Set<string>()
  for (const entry of entries) {
    if (entry === 'none' && entries.length === 1) break
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(entry) || entry.includes('/')) {
      return {
        ok: false,
        error: `"${entry}": a registry host with an optional port, without scheme or path (example: registry.corp:5000)`,
      }
    }
    const host = normaliseRegistry(entry)
    if (!HOST.test(host)) return { ok: false, error: `"${entry}" is not a registry host[:port]` }
    // Image references read a first component as a registry only with a "." or ":" in it,
    // or when it is localhost: `corp/app` is docker.io/corp/app.
    if (host !== 'localhost' && !host.includes('.') && !host.includes(':')) {
      return {
        ok: false,
        error: `"${entry}" can never be the registry of an image reference (it needs a "." or a port, or is localhost); "${entry}/app" means docker.io/${entry}/app`,
      }
    }
    hosts.add(host)
  }
  return {
    ok: true,
    value: Object.freeze({ any: false, hosts, text: hosts.size === 0 ? 'none' : [...hosts].join(',') }),
  }
}

export function isPullable(pullable: PullableRegistries, registry: string): boolean {
  return pullable.any || pullable.hosts.has(registry)
}
