import { Command, CommanderError, Option } from 'commander'
import { parseDuration } from './duration.js'

// Every subcommand's flags, one way: a declarative list turned into a commander command
// (parsing, unknown-flag suggestions, the generated help), with the strictness our users
// rely on added in front of it: a flag given twice, a flag without its value (the next
// word being another flag) and an empty value are usage errors, never a silent pick.
// Environment variables are read from the env the caller passes (tests pass their own),
// after the flags: a flag always wins; an empty variable counts as unset.

/** Bad flags or arguments: the command prints the message and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

export const EXIT_USAGE = 2

export interface FlagDef {
  /** Long name without the dashes: `port` for `--port`. */
  name: string
  /** One letter: `f` for `-f`. */
  short?: string
  /** Placeholder of the value in the help (`N`, `FILE`); a flag without one is a switch. */
  value?: string
  help: string
  /** Environment variable read when the flag is absent. */
  env?: string
  /** For the help only: the command computes the real default (it may depend on other flags). */
  default?: string
  /** The only values accepted (flag or environment). */
  choices?: readonly string[]
  /** May be given more than once; the values are kept in order. */
  repeatable?: boolean
}

export interface CommandSpec {
  /** As typed: `neverpull-guard agent`. */
  name: string
  /** What follows the name in the usage line; `[flags]` when absent. */
  usage?: string
  description: string
  flags: readonly FlagDef[]
  /** How many positional arguments the command takes at most (0 when absent). */
  maxArgs?: number
  /** Text printed after the flags in the help. */
  footer?: string
  /** The words for an unknown flag, for a command whose users know other words. */
  unknownFlag?: (flag: string) => string
}

const HELP: FlagDef = { name: 'help', short: 'h', help: 'show this help' }

/** Flags as parsed: each by its long name, from the command line, else its env variable. */
export class ParsedFlags {
  constructor(
    private readonly values: ReadonlyMap<string, string | readonly string[] | true>,
    /** Positional arguments, in order. */
    readonly args: readonly string[],
  ) {}

  /** `-h` or `--help` was given: print the help, exit 0. */
  get help(): boolean {
    return this.values.get('help') === true
  }

  /** A valued flag's value; undefined when neither the flag nor its env variable is set. */
  string(name: string): string | undefined {
    const v = this.values.get(name)
    if (v === undefined || typeof v === 'string') return v
    return v === true ? undefined : v[v.length - 1]
  }

  /** A repeatable flag's values ([] when absent). */
  strings(name: string): string[] {
    const v = this.values.get(name)
    if (v === undefined || v === true) return []
    return typeof v === 'string' ? [v] : [...v]
  }

  /** A switch. */
  bool(name: string): boolean {
    return this.values.get(name) === true
  }

  has(name: string): boolean {
    return this.values.has(name)
  }
}

function optionFlags(def: FlagDef): string {
  const long = `--${def.name}${def.value === undefined ? '' : ` <${def.value}>`}`
  return def.short === undefined ? long : `-${def.short}, ${long}`
}

function choiceError(flag: string, value: string, choices: readonly string[]): UsageError {
  return new UsageError(`${flag} "${value}" is not one of ${choices.join(', ')}`)
}

/** The commander command for a spec; fresh for every parse, so no parse state is shared. */
function toCommand(spec: CommandSpec): Command {
  const command = new Command(spec.name)
    .usage(spec.usage ?? '[flags]')
    .description(spec.description)
    .helpOption(false)
    .exitOverride()
    .allowExcessArguments(true)
    .configureOutput({ writeOut: () => {}, writeErr: () => {} })
    .configureHelp({
      helpWidth: 100,
      sortOptions: false,
      styleTitle: (title) => (title === 'Options:' ? 'Flags:' : title),
      optionTerm: (option) => option.flags.replace(/<([^>]+)>/g, '$1'),
      optionDescription: (option) => {
        const def = [...spec.flags, HELP].find(
          (d) => d.name === option.attributeName() || `--${d.name}` === option.long,
        )
        if (def === undefined) return option.description
        const extras: string[] = []
        if (def.choices !== undefined) extras.push(def.choices.join(' | '))
        if (def.default !== undefined) extras.push(`default ${def.default}`)
        if (def.repeatable === true) extras.push('repeatable')
        let text = def.help + (extras.length === 0 ? '' : ` (${extras.join('; ')})`)
        if (def.env !== undefined) text += ` [${def.env}]`
        return text
      },
    })
  if (spec.maxArgs !== undefined && spec.maxArgs > 0) command.argument('[args...]')
  for (const def of [...spec.flags, HELP]) {
    const option = new Option(optionFlags(def), def.help)
    if (def.value !== undefined) {
      const flag = `--${def.name}`
      option.argParser((value: string, previous: unknown): string | string[] => {
        if (def.choices !== undefined && !def.choices.includes(value)) throw choiceError(flag, value, def.choices)
        if (def.repeatable !== true) return value
        return [...(Array.isArray(previous) ? (previous as string[]) : []), value]
      })
    }
    command.addOption(option)
  }
  return command
}

/**
 * What commander lets through and we do not: the same flag twice, a valued flag followed
 * by another flag instead of its value, an empty value, a value given to a switch.
 */
function checkStrictly(spec: CommandSpec, argv: readonly string[]): void {
  const defs = [...spec.flags, HELP]
  const byLong = new Map(defs.map((d) => [d.name, d]))
  const byShort = new Map(defs.filter((d) => d.short !== undefined).map((d) => [d.short!, d]))
  const seen = new Set<string>()
  const once = (def: FlagDef): void => {
    if (def.repeatable !== true && def !== HELP && seen.has(def.name))
      throw new UsageError(`--${def.name} given more than once`)
    seen.add(def.name)
  }
  const value = (def: FlagDef, inline: string | undefined, next: string | undefined): number => {
    let used = 0
    let v = inline
    if (v === undefined) {
      // `-` alone is a value (stdin, stdout); any other word starting with a dash is a flag.
      if (next === undefined || (next.startsWith('-') && next !== '-'))
        throw new UsageError(`--${def.name} needs a value`)
      v = next
      used = 1
    }
    if (v === '') throw new UsageError(`--${def.name} needs a non-empty value`)
    return used
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') break
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=')
      const def = byLong.get(eq === -1 ? arg.slice(2) : arg.slice(2, eq))
      if (def === undefined) continue // commander names it, with a suggestion
      once(def)
      if (def.value === undefined) {
        if (eq !== -1) throw new UsageError(`--${def.name} takes no value`)
        continue
      }
      i += value(def, eq === -1 ? undefined : arg.slice(eq + 1), argv[i + 1])
    } else if (arg.startsWith('-') && arg.length > 1) {
      for (let j = 1; j < arg.length; j++) {
        const def = byShort.get(arg[j]!)
        if (def === undefined) break
        once(def)
        if (def.value === undefined) continue
        const rest = arg.slice(j + 1)
        i += value(def, rest === '' ? undefined : rest, argv[i + 1])
        break
      }
    }
  }
}

function commanderMessage(spec: CommandSpec, err: CommanderError): string {
  const text = err.message.replace(/^error: /, '').replace(/\n/g, ' ')
  if (err.code === 'commander.unknownOption' && spec.unknownFlag !== undefined) {
    const flag = /'([^']*)'/.exec(text)?.[1] ?? text
    return spec.unknownFlag(flag)
  }
  return text.charAt(0).toUpperCase() + text.slice(1)
}

/** Parses argv (after the subcommand) and env; throws UsageError. */
export function parseFlags(spec: CommandSpec, argv: readonly string[], env: NodeJS.ProcessEnv = {}): ParsedFlags {
  checkStrictly(spec, argv)
  const command = toCommand(spec)
  try {
    command.parse([...argv], { from: 'user' })
  } catch (err) {
    if (err instanceof UsageError) throw err
    if (err instanceof CommanderError) throw new UsageError(commanderMessage(spec, err))
    throw err
  }
  const max = spec.maxArgs ?? 0
  if (command.args.length > max) {
    const extra = command.args[max]!
    throw new UsageError(
      max === 0
        ? `unexpected argument '${extra}': ${spec.name} takes no positional arguments`
        : `unexpected argument '${extra}': ${spec.name} takes at most ${max}`,
    )
  }
  const opts = command.opts<Record<string, string | string[] | true | undefined>>()
  const values = new Map<string, string | readonly string[] | true>()
  for (const def of [...spec.flags, HELP]) {
    const option = command.options.find((o) => o.long === `--${def.name}`)
    const v = option === undefined ? undefined : opts[option.attributeName()]
    if (v !== undefined) {
      values.set(def.name, v)
      continue
    }
    if (def.env === undefined) continue
    const fromEnv = env[def.env]
    // An empty variable (a template that rendered nothing) is unset; an empty flag is an error.
    if (fromEnv === undefined || fromEnv === '') continue
    if (def.choices !== undefined && !def.choices.includes(fromEnv)) throw choiceError(def.env, fromEnv, def.choices)
    values.set(def.name, fromEnv)
  }
  return new ParsedFlags(values, command.args)
}

/** The help text, generated from the same definitions the parser uses. */
export function usage(spec: CommandSpec): string {
  const help = toCommand(spec).helpInformation()
  return spec.footer === undefined ? help : `${help}\n${spec.footer.trimEnd()}\n`
}

/** Go-style duration (`500ms`, `10s`, `5m`, `1h30m`); `flag` names it in the error. */
export function durationValue(text: string, flag?: string): number {
  const ms = parseDuration(text)
  if (ms === undefined) {
    throw new UsageError(
      `${flag === undefined ? '' : `${flag}: `}invalid duration "${text}": use a number with a unit, e.g. 500ms, 10s, 5m, 1h`,
    )
  }
  return ms
}

/** A whole number from `min` to `max`. */
export function integerValue(text: string, flag: string, min: number, max: number): number {
  const n = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} "${text}" is not a whole number from ${min} to ${max}`)
  }
  return n
}
