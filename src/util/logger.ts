/**
 * The part of a pino logger the code uses: every component gets one injected (STYLE.md:
 * no module-level logger), tests pass `silentLogger` or a pino writing to memory.
 */
export interface Logger {
  /** pino's: lets a hot path skip building a line nobody will write. */
  isLevelEnabled?(level: string): boolean
  debug(obj: object, msg: string): void
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }
