import { STATUS_CODES } from 'node:http'
import { isObject } from '../util/guards.js'

// The apiserver's metav1.Status, read in one place: from an error response's body (or a
// proxy's page that is not one), and from a watch ERROR event's object.

export interface ApiStatus {
  code: number
  /** Status.reason (`NotFound`, `Expired`, ...), else the HTTP status text. */
  reason: string
  /** Status.message, the apiserver's own words, when it sent any. */
  message: string | undefined
  /** The start of a body that is not a Status (a proxy's error page), trimmed. */
  text: string | undefined
}

/** A Status object (already parsed JSON), with `code` as the fallback for its code. */
export function statusOf(obj: unknown, code: number): ApiStatus {
  const status = isObject(obj) ? obj : {}
  const c = typeof status['code'] === 'number' ? status['code'] : code
  const reason =
    typeof status['reason'] === 'string' && status['reason'] !== '' ? status['reason'] : (STATUS_CODES[c] ?? 'Unknown')
  const message = typeof status['message'] === 'string' && status['message'] !== '' ? status['message'] : undefined
  return { code: c, reason, message, text: undefined }
}

/** The Status in an error response with HTTP status `code` and body `body`. */
export function parseStatus(code: number, body: string): ApiStatus {
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    const text = body.trim().slice(0, 300)
    return { ...statusOf(undefined, code), text: text === '' ? undefined : text }
  }
  return { ...statusOf(parsed, code), code }
}

/** A Status the apiserver answered with, as an HTTP error or a watch ERROR event. */
export class ApiStatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    /** The Status as parsed, when the error came from an HTTP answer. */
    readonly status?: ApiStatus,
  ) {
    super(message)
  }
}

/** The apiserver's Status from an error response, or the bare HTTP status, as an error. */
export function statusError(code: number, body: string): ApiStatusError {
  const status = parseStatus(code, body)
  return new ApiStatusError(
    code,
    status.reason,
    `${code} ${status.reason}: ${status.message ?? status.text ?? `HTTP ${code}`}`,
    status,
  )
}
