// The two timestamp types of the Kubernetes API (k8s.io/apimachinery pkg/apis/meta/v1):
// - Time (time.go): RFC 3339, written without a fraction; any fraction is accepted on input.
// - MicroTime (micro_time.go): RFC 3339 with EXACTLY six fractional digits
//   (`2006-01-02T15:04:05.000000Z07:00`), on input as on output. Lease acquireTime/renewTime
//   and Event eventTime are MicroTimes: `Date.toISOString()` (three digits) is refused with
//   `cannot parse ".406Z" as ".000000"`.

/** A metav1.MicroTime for `ms` since the epoch, in UTC: `2026-11-30T14:00:00.406000Z`. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z')
}

/** A metav1.Time for `ms` since the epoch, in UTC, truncated to the second as the apiserver stores it. */
export function kubeTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/**
 * ms since the epoch of a Time or MicroTime as read from the API (either form, any number of
 * fractional digits, `Z` or an offset), or of a Date a client library made of one; NaN when
 * absent or unreadable.
 */
export function parseKubeTime(value: unknown): number {
  if (value instanceof Date) return value.getTime()
  if (typeof value !== 'string') return Number.NaN
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(value)
  if (m === null) return Number.NaN
  const ms = (m[2] ?? '').padEnd(3, '0').slice(0, 3)
  return Date.parse(`${m[1]}.${ms}${m[3]!}`)
}
