// Go's time.Parse for the two layouts the Kubernetes API uses for timestamps, with Go's error
// text, so the in-process API server refuses what the real one refuses, in its words.
// Follows go/src/time/format.go (parse, getnum, parseNanoseconds, ParseError.Error) for the
// elements these layouts contain; apimachinery pkg/apis/meta/v1 time.go and micro_time.go
// call time.Parse(time.RFC3339, s) and time.Parse(RFC3339Micro, s).

export const RFC3339 = '2006-01-02T15:04:05Z07:00'
export const RFC3339_MICRO = '2006-01-02T15:04:05.000000Z07:00'

export type GoTimeLayout = typeof RFC3339 | typeof RFC3339_MICRO

/** A parsed instant: whole seconds since the epoch and nanoseconds within the second. */
export interface GoTime {
  seconds: number
  nanos: number
}

export type GoTimeResult = { ok: true; time: GoTime } | { ok: false; error: string }

// Go's quote(): a double-quoted string; enough for the ASCII these fields carry.
const quote = (s: string): string => JSON.stringify(s)

const isDigit = (s: string, i: number): boolean => i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57

/** getnum: one or two digits (two when fixed). */
function getnum(s: string, fixed: boolean): [number, string] | undefined {
  if (!isDigit(s, 0)) return undefined
  if (!isDigit(s, 1)) return fixed ? undefined : [Number(s[0]), s.slice(1)]
  return [Number(s.slice(0, 2)), s.slice(2)]
}

/** Go's atoi: an optional sign and decimal digits. */
function atoi(s: string): number | undefined {
  return /^[+-]?\d+$/.test(s) ? Number(s) : undefined
}

function daysIn(month: number, year: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate()
}

type Element =
  { literal: string } | { std: 'year' | 'month' | 'day' | 'hour' | 'minute' | 'second' | 'frac6' | 'tz'; text: string }

function elementsOf(layout: GoTimeLayout): readonly Element[] {
  return [
    { std: 'year', text: '2006' },
    { literal: '-' },
    { std: 'month', text: '01' },
    { literal: '-' },
    { std: 'day', text: '02' },
    { literal: 'T' },
    { std: 'hour', text: '15' },
    { literal: ':' },
    { std: 'minute', text: '04' },
    { literal: ':' },
    { std: 'second', text: '05' },
    ...(layout === RFC3339_MICRO ? [{ std: 'frac6', text: '.000000' } as const] : []),
    { std: 'tz', text: 'Z07:00' },
  ]
}

const ELEMENTS: Readonly<Record<GoTimeLayout, readonly Element[]>> = {
  [RFC3339]: elementsOf(RFC3339),
  [RFC3339_MICRO]: elementsOf(RFC3339_MICRO),
}

export function parseGoTime(layout: GoTimeLayout, input: string): GoTimeResult {
  const cannot = (value: string, elem: string): GoTimeResult => ({
    ok: false,
    error: `parsing time ${quote(input)} as ${quote(layout)}: cannot parse ${quote(value)} as ${quote(elem)}`,
  })
  const outOfRange = (what: string): GoTimeResult => ({
    ok: false,
    error: `parsing time ${quote(input)}: ${what} out of range`,
  })
  const elements = ELEMENTS[layout]
  let value = input
  let year = 0
  let month = 1
  let day = 1
  let hour = 0
  let minute = 0
  let second = 0
  let nanos = 0
  let offsetSeconds = 0
  for (let e = 0; e < elements.length; e++) {
    const el = elements[e]!
    if ('literal' in el) {
      if (!value.startsWith(el.literal)) return cannot(value, el.literal)
      value = value.slice(el.literal.length)
      continue
    }
    switch (el.std) {
      case 'year': {
        if (value.length < 4 || !isDigit(value, 0)) return cannot(value, el.text)
        const y = atoi(value.slice(0, 4))
        value = value.slice(4)
        if (y === undefined) return cannot(value, el.text)
        year = y
        break
      }
      case 'month':
      case 'day':
      case 'hour':
      case 'minute':
      case 'second': {
        const got = getnum(value, el.std !== 'hour')
        if (got === undefined) return cannot(value, el.text)
        const [n, rest] = got
        value = rest
        if (el.std === 'month') {
          if (n <= 0 || n > 12) return outOfRange('month')
          month = n
        } else if (el.std === 'day') {
          day = n
        } else if (el.std === 'hour') {
          if (n >= 24) return outOfRange('hour')
          hour = n
        } else if (el.std === 'minute') {
          if (n >= 60) return outOfRange('minute')
          minute = n
        } else {
          if (n >= 60) return outOfRange('second')
          second = n
          // A fraction the layout does not name is accepted, with any number of digits.
          const next = elements[e + 1]
          if (
            value.length >= 2 &&
            (value[0] === '.' || value[0] === ',') &&
            isDigit(value, 1) &&
            !(next !== undefined && 'std' in next && next.std === 'frac6')
          ) {
            let n2 = 2
            while (isDigit(value, n2)) n2++
            nanos = Number(value.slice(1, Math.min(n2, 10)).padEnd(9, '0'))
            value = value.slice(n2)
          }
        }
        break
      }
      case 'frac6': {
        const width = 7
        if (value.length < width) return cannot(value, el.text)
        if (value[0] !== '.' && value[0] !== ',') return cannot(value, el.text)
        const ns = atoi(value.slice(1, width))
        if (ns === undefined) return cannot(value, el.text)
        if (ns < 0) return outOfRange('fractional second')
        nanos = ns * 1000
        value = value.slice(width)
        break
      }
      case 'tz': {
        if (value.startsWith('Z')) {
          value = value.slice(1)
          break
        }
        if (value.length < 6 || value[3] !== ':') return cannot(value, el.text)
        const sign = value[0]
        const hh = getnum(value.slice(1, 3), true)
        const mm = getnum(value.slice(4, 6), true)
        if (hh === undefined || mm === undefined || (sign !== '+' && sign !== '-')) return cannot(value, el.text)
        if (hh[0] > 24) return outOfRange('time zone offset hour')
        if (mm[0] > 60) return outOfRange('time zone offset minute')
        offsetSeconds = (sign === '-' ? -1 : 1) * (hh[0] * 3600 + mm[0] * 60)
        value = value.slice(6)
        break
      }
    }
  }
  if (value !== '') return { ok: false, error: `parsing time ${quote(input)}: extra text: ${quote(value)}` }
  if (day < 1 || day > daysIn(month, year)) return outOfRange('day')
  const utc = new Date(0)
  utc.setUTCFullYear(year, month - 1, day)
  utc.setUTCHours(hour, minute, second, 0)
  return { ok: true, time: { seconds: utc.getTime() / 1000 - offsetSeconds, nanos } }
}

/** Time.MarshalJSON: RFC 3339 in UTC, the fraction dropped. */
export function formatGoTime(t: GoTime, layout: GoTimeLayout): string {
  const base = new Date(t.seconds * 1000).toISOString().slice(0, 19)
  if (layout === RFC3339) return `${base}Z`
  return `${base}.${String(Math.floor(t.nanos / 1000)).padStart(6, '0')}Z`
}
