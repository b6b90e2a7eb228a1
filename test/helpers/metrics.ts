// Reads Prometheus' text exposition format (what /metrics answers) well enough to find a
// series by name and labels: tests then fail when a metric the rules or the dashboard use
// is renamed or loses a label.

export interface Series {
  name: string
  labels: Record<string, string>
  value: number
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/y

function unescape(v: string): string {
  return v.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
}

export function parseExposition(text: string): Series[] {
  const out: Series[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const m = LINE.exec(line)
    if (m === null) throw new Error(`not an exposition line: ${line}`)
    const labels: Record<string, string> = {}
    const body = m[2] ?? ''
    LABEL.lastIndex = 0
    while (LABEL.lastIndex < body.length) {
      const start = LABEL.lastIndex
      const l = LABEL.exec(body)
      if (l === null || LABEL.lastIndex === start) throw new Error(`bad labels in: ${line}`)
      labels[l[1]!] = unescape(l[2]!)
    }
    const v = m[3]!
    out.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) })
  }
  return out
}

/** Every series of the metric whose labels include `labels`. */
export function series(text: string, name: string, labels: Record<string, string> = {}): Series[] {
  return parseExposition(text).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )
}

/** The value of the one series with exactly these labels, undefined when there is none. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const keys = Object.keys(labels).sort().join(',')
  const hits = series(text, name, labels).filter((s) => Object.keys(s.labels).sort().join(',') === keys)
  if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${hits.length} series`)
  return hits[0]?.value
}
