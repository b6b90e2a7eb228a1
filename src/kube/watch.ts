import type { IncomingMessage } from 'node:http'
import { readText, type KubeHttp } from './http.js'
import { statusError } from './status.js'
import { isObject } from '../util/guards.js'

// A watch as the apiserver streams it: one JSON event per line (`{"type":"ADDED","object":
// {...}}`), newline-delimited, until it ends the stream (timeoutSeconds) or the connection
// is cut. This file frames and decodes the lines; what the events mean is the reflector's.

/**
 * The apiserver refuses objects over 3 MiB (etcd's request limit is 1.5 MiB): a longer event
 * line is a broken stream, and buffering it without bound would cost the process.
 */
export const MAX_EVENT_CHARS = 16 * 1024 * 1024

/** One line of a watch stream: an event (type '' when it had none), or a line that is not JSON. */
export type WatchFrame = { ok: true; type: string; object: unknown } | { ok: false; line: string }

/** Splits a stream's text into lines, holding back the unfinished one. */
export class NdjsonDecoder {
  private pending = ''

  constructor(private readonly maxLineChars = MAX_EVENT_CHARS) {}

  /** The lines `chunk` completes. */
  push(chunk: string): string[] {
    const lines: string[] = []
    let from = 0
    for (;;) {
      const nl = chunk.indexOf('\n', from)
      if (nl === -1) break
      lines.push(this.pending === '' ? chunk.slice(from, nl) : this.pending + chunk.slice(from, nl))
      this.pending = ''
      from = nl + 1
    }
    if (from < chunk.length) this.pending += chunk.slice(from)
    return lines
  }

  /** Throws when the unfinished line has grown past the limit: the stream is broken. */
  check(): void {
    if (this.pending.length <= this.maxLineChars) return
    this.pending = ''
    throw new Error(`watch event longer than ${this.maxLineChars} characters without a newline; the stream is broken`)
  }

  /** The last line, when the stream ended without a newline after it. */
  end(): string | undefined {
    const last = this.pending
    this.pending = ''
    return last.trim() === '' ? undefined : last
  }
}

/** One line decoded; undefined for a blank one. */
export function decodeWatchLine(line: string): WatchFrame | undefined {
  if (line.trim() === '') return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(line)
  } catch {
    return { ok: false, line }
  }
  if (!isObject(parsed)) return { ok: true, type: '', object: undefined }
  return { ok: true, type: typeof parsed.type === 'string' ? parsed.type : '', object: parsed.object }
}

function cut(cause?: unknown): Error {
  // Node's own "Premature close" says nothing the sentence does not.
  const detail =
    cause instanceof Error && (cause as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE'
      ? `: ${cause.message}`
      : ''
  return new Error(`the watch stream was cut before its end (premature close)${detail}`)
}

/**
 * The frames of a watch response, in order. Ends when the apiserver completes the response;
 * throws when it is cut, a line is too long, or `signal` aborts (with the signal's reason).
 * Leaving the loop early (break, return) closes the response.
 */
export async function* watchFrames(res: IncomingMessage, signal: AbortSignal): AsyncGenerator<WatchFrame> {
  try {
    // Cut between the response and now: nothing more will come.
    if (res.closed) throw signal.aborted ? (signal.reason as Error) : cut()
    res.setEncoding('utf8')
    const decoder = new NdjsonDecoder()
    const chunks = res[Symbol.asyncIterator]() as AsyncIterator<string>
    for (;;) {
      let next: IteratorResult<string>
      try {
        next = await chunks.next()
      } catch (err) {
        throw signal.aborted ? (signal.reason as Error) : cut(err)
      }
      if (next.done === true) break
      for (const line of decoder.push(next.value)) {
        const frame = decodeWatchLine(line)
        if (frame !== undefined) yield frame
      }
      decoder.check()
    }
    if (!res.complete) throw signal.aborted ? (signal.reason as Error) : cut()
    const last = decoder.end()
    const frame = last === undefined ? undefined : decodeWatchLine(last)
    if (frame !== undefined) yield frame
  } finally {
    res.destroy()
  }
}

export interface WatchRequest {
  /** Where the watch starts: the list's resourceVersion, or the last event's. */
  resourceVersion: string
  /** Asked of the apiserver, which ends the stream normally after about this long. */
  timeoutSeconds: number
  /** Closes the stream (the frames then throw the signal's reason). */
  signal: AbortSignal
}

/**
 * Opens a watch of `collection` with bookmarks. A refusal (410 Gone when the resourceVersion
 * is too old, 403, 404...) is an ApiStatusError; once the apiserver answered 200, the frames.
 */
export async function openWatch(
  http: KubeHttp,
  collection: string,
  req: WatchRequest,
): Promise<AsyncGenerator<WatchFrame>> {
  const query = new URLSearchParams({
    watch: 'true',
    resourceVersion: req.resourceVersion,
    allowWatchBookmarks: 'true',
    timeoutSeconds: String(req.timeoutSeconds),
  })
  const res = await http.open({ method: 'GET', path: collection, query, signal: req.signal })
  if (res.statusCode !== 200) throw statusError(res.statusCode ?? 0, await readText(res))
  return watchFrames(res, req.signal)
}
