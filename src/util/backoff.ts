// One retry backoff for the agent (publishing) and the reflector (list/watch): exponential
// from `initialMs`, capped at `maxMs`; with jitter, uniformly in [d/2, d] as client-go's
// wait.Backoff with Jitter spreads many clients that failed together.

export interface BackoffPolicy {
  initialMs: number
  maxMs: number
  /** Spread each delay over its upper half. */
  jitter?: boolean
}

/** The delay before retry number `attempt` (1 for the first retry). */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const max = Math.max(policy.maxMs, policy.initialMs)
  const base = Math.min(max, policy.initialMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 30))
  return policy.jitter === true ? Math.round(base / 2 + (random() * base) / 2) : base
}
