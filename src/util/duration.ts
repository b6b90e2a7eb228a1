const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** Go-style durations: `500ms`, `10s`, `5m`, `1h30m`; a unit is required (but for `0`). */
export function parseDuration(text: string): number | undefined {
  const s = text.trim()
  if (s === '0') return 0
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y
  let total = 0
  let pos = 0
  while (pos < s.length) {
    re.lastIndex = pos
    const m = re.exec(s)
    if (m === null) return undefined
    total += Number(m[1]) * UNITS[m[2]!]!
    pos = re.lastIndex
  }
  return s.length > 0 && Number.isFinite(total) ? Math.round(total) : undefined
}
