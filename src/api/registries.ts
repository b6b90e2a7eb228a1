// Which registries the nodes can pull from: the webhook's --pullable-registries, or a
// namespace's annotation. Parsing and matching live in src/image/registry.ts.

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
