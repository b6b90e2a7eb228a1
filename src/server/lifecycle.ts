import type { Logger } from '../util/logger.js'

// The webhook's parts (inventory, audit, certificate reloading, listeners) as components
// started in order and stopped in the reverse order, each once: what starts later may
// rely on what started before it, and stops before it. Ready means every component is.

export interface Component {
  /** For the log lines: `inventory`, `audit`, `https`. */
  readonly name: string
  start(): Promise<void> | void
  /** Whether this part can serve; a component with nothing to wait for is always ready. */
  ready?(): boolean
  stop(): Promise<void> | void
}

export class Lifecycle {
  private readonly components: Component[] = []
  private readonly started: Component[] = []
  private stopping: Promise<void> | undefined

  constructor(private readonly log: Logger) {}

  add(component: Component): this {
    if (this.started.length > 0 || this.stopping !== undefined)
      throw new Error(`${component.name}: components are added before start`)
    this.components.push(component)
    return this
  }

  /**
   * Starts each component in order. When one fails, those already started are stopped
   * (in reverse) before the error is passed on: a port in use leaves no watch running.
   */
  async start(): Promise<void> {
    for (const c of this.components) {
      if (this.stopping !== undefined) return
      try {
        await c.start()
      } catch (err) {
        this.log.error({ component: c.name, err }, 'component failed to start; stopping the others')
        await this.stop()
        throw err
      }
      if (this.stopping !== undefined) {
        // Stopped while this one was starting: the stop did not see it, so stop it here.
        await this.stopOne(c)
        return
      }
      this.started.push(c)
    }
  }

  private async stopOne(c: Component): Promise<void> {
    try {
      await c.stop()
    } catch (err) {
      this.log.error({ component: c.name, err }, 'component failed to stop cleanly')
    }
  }

  /** Every component is ready (none added counts as ready); false once stopping. */
  ready(): boolean {
    if (this.stopping !== undefined || this.started.length !== this.components.length) return false
    for (const c of this.components) if (c.ready !== undefined && !c.ready()) return false
    return true
  }

  /** Which components are not ready, for /readyz and logs. */
  waitingFor(): string[] {
    const started = new Set(this.started)
    return this.components.filter((c) => !started.has(c) || (c.ready !== undefined && !c.ready())).map((c) => c.name)
  }

  /** Stops the started components in reverse order; a failing stop is logged and the rest still stop. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const c of [...this.started].reverse()) await this.stopOne(c)
      this.started.length = 0
    })()
    return this.stopping
  }
}
