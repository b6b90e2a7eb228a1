// "Did you mean ...?" for image names: a bounded edit distance and a nearest-names search over
// a node's image keys. Called per missing image over hundreds of names, so no allocation per
// comparison: one search allocates its two DP rows once and reuses them for every candidate.

/** The two DP rows editDistance works in, grown as needed; one per search, never module state. */
export class DistanceRows {
  buffer = new Int32Array(2 * 128)

  /** A buffer of at least 2 * width cells. */
  forWidth(width: number): Int32Array {
    if (this.buffer.length < 2 * width) this.buffer = new Int32Array(4 * width)
    return this.buffer
  }
}

/**
 * Levenshtein distance between a and b, or max + 1 as soon as it is certain to exceed max.
 * Only the diagonal band |i - j| <= max is computed: O(len * max). `skip` leading characters
 * that a and b are known to share are left out without comparing them.
 */
export function editDistance(
  a: string,
  b: string,
  max: number,
  skip = 0,
  rows: DistanceRows = new DistanceRows(),
): number {
  max = max > 0 ? Math.floor(max) : 0
  const over = max + 1
  if (a === b) return 0
  if (a.length - b.length > max || b.length - a.length > max) return over
  // A shared prefix or suffix never changes the distance: leave both out of the rows (image
  // names share most of theirs, `registry.example.com/team/` or `:1.2.3`).
  const end = a.length < b.length ? a.length : b.length
  while (skip < end && a.charCodeAt(skip) === b.charCodeAt(skip)) skip++
  let ea = a.length
  let eb = b.length
  while (ea > skip && eb > skip && a.charCodeAt(ea - 1) === b.charCodeAt(eb - 1)) {
    ea--
    eb--
  }
  const la = ea - skip
  const lb = eb - skip
  if (la === 0) return lb
  if (lb === 0) return la

  const width = lb + 1
  const buf = rows.forWidth(width)
  let prev = 0
  let cur = width

  const firstHi = lb < max ? lb : max
  for (let j = 0; j <= firstHi; j++) buf[j] = j
  if (firstHi < lb) buf[firstHi + 1] = over

  for (let i = 1; i <= la; i++) {
    const lo = i - max > 1 ? i - max : 1
    const hi = i + max < lb ? i + max : lb
    // Cells left of the band cost more than max: any value > max is as good as the truth.
    let left = lo === 1 ? (i <= max ? i : over) : over
    buf[cur + lo - 1] = left
    let rowMin = left
    const ca = a.charCodeAt(skip + i - 1)
    for (let j = lo; j <= hi; j++) {
      let v = (buf[prev + j - 1] as number) + (ca === b.charCodeAt(skip + j - 1) ? 0 : 1)
      const up = (buf[prev + j] as number) + 1
      if (up < v) v = up
      if (left + 1 < v) v = left + 1
      if (v > over) v = over
      buf[cur + j] = v
      left = v
      if (v < rowMin) rowMin = v
    }
    if (hi < lb) buf[cur + hi + 1] = over
    if (rowMin > max) return over
    const t = prev
    prev = cur
    cur = t
  }
  const d = buf[prev + lb] as number
  return d > max ? over : d
}

/**
 * Candidates within distance max of wanted (wanted itself excluded), closest first, ties in
 * string order, at most limit. Once limit names are held, the bound tightens to the worst of them.
 * `sharedPrefix`: how many leading characters every candidate shares with wanted (the
 * repository, when ranking its tags), skipped by every comparison.
 */
export function nearest(
  wanted: string,
  candidates: Iterable<string>,
  max: number,
  limit: number,
  sharedPrefix = 0,
): string[] {
  const names: string[] = []
  const dists: number[] = []
  if (limit <= 0 || max < 0) return names
  let bound = max
  const lw = wanted.length
  const rows = new DistanceRows()
  for (const c of candidates) {
    if (c === wanted) continue
    const diff = c.length - lw
    if (diff > bound || -diff > bound) continue
    const d = editDistance(wanted, c, bound, sharedPrefix, rows)
    if (d > bound) continue
    // Insertion into the small sorted result; equal names are kept once.
    let k = names.length
    while (k > 0 && ((dists[k - 1] as number) > d || ((dists[k - 1] as number) === d && (names[k - 1] as string) > c)))
      k--
    if (k > 0 && dists[k - 1] === d && names[k - 1] === c) continue
    if (k >= limit) continue
    names.splice(k, 0, c)
    dists.splice(k, 0, d)
    if (names.length > limit) {
      names.pop()
      dists.pop()
    }
    if (names.length === limit) bound = dists[limit - 1] as number
  }
  return names
}
