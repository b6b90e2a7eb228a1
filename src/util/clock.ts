// Time as a seam: the agent's loop and the inventory reflector (its backoffs, its list and
// watch deadlines, close's wait) read the clock and sleep through one of these, so tests
// drive them without waiting.

export interface Clock {
  now(): number
  /** Resolves after `ms`, or early when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>
}

/**
 * Date.now and setTimeout. With `unref`, a pending sleep does not keep the process alive
 * (for loops that live beside a server, which does).
 */
export function timerClock(options: { unref?: boolean } = {}): Clock {
  return {
    now: () => Date.now(),
    sleep: (ms, signal) =>
      new Promise((resolve) => {
        if (signal.aborted) return resolve()
        const done = (): void => {
          clearTimeout(timer)
          signal.removeEventListener('abort', done)
          resolve()
        }
        const timer = setTimeout(done, ms)
        if (options.unref === true) timer.unref()
        signal.addEventListener('abort', done, { once: true })
      }),
  }
}

export const systemClock: Clock = timerClock()
