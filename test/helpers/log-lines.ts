/** One pino JSON line as the tests read it: the fields they check, the rest unknown. */
export interface LogLine {
  level: number
  msg?: string
  admission?: { reason?: string; decision?: string; writerNode?: string; [field: string]: unknown }
  [field: string]: unknown
}

/** Parses one line the logger wrote. */
export function parseLogLine(chunk: unknown): LogLine {
  return JSON.parse(String(chunk)) as LogLine
}
