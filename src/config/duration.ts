const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** Go-style durations: `500ms`, `10s`, `5m`, `1h30m`; a bare number is seconds. */
export function parseDuration(text: string): number | undefined {
  const s = text.trim()
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy
  let total = 0
  let matched = 0
  let m: RegExpExecArray | null
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * UNITS[m[2]!]!
    matched = re.lastIndex
  }
  return matched === s.length && s.length > 0 ? total : undefined
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}
