import t from 'tap'
import { durationValue, integerValue, parseFlags, usage, UsageError, type CommandSpec } from '../../src/util/flags.js'

const spec: CommandSpec = {
  name: 'neverpull-guard demo',
  description: 'A demo command.',
  maxArgs: 1,
  flags: [
    { name: 'port', value: 'N', env: 'DEMO_PORT', default: '8443', help: 'a port' },
    { name: 'mode', value: 'MODE', env: 'DEMO_MODE', choices: ['enforce', 'warn'], help: 'a mode' },
    { name: 'file', short: 'f', value: 'PATH', repeatable: true, help: 'files' },
    { name: 'out', short: 'o', value: 'FILE|-', help: 'where to' },
    { name: 'force', help: 'a switch' },
    { name: 'verbose', short: 'v', help: 'another switch' },
  ],
}

t.test('values from flags, in every spelling, and from the environment', (t) => {
  const f = parseFlags(spec, ['--port', '1', '-f', 'a', '-fb', '--file=c', '-vo', '-', 'arg'], {
    DEMO_PORT: '2',
    DEMO_MODE: 'warn',
  })
  t.equal(f.string('port'), '1', 'the flag wins over its env variable')
  t.equal(f.string('mode'), 'warn', 'the env variable when the flag is absent')
  t.strictSame(f.strings('file'), ['a', 'b', 'c'])
  t.equal(f.string('out'), '-', '- alone is a value')
  t.equal(f.bool('verbose'), true)
  t.equal(f.bool('force'), false)
  t.strictSame(f.args, ['arg'])
  t.equal(f.help, false)
  t.equal(parseFlags(spec, ['--out=-x']).string('out'), '-x', 'a dash value with =')
  t.equal(parseFlags(spec, ['-h']).help, true)
  t.equal(parseFlags(spec, [], { DEMO_PORT: '' }).string('port'), undefined, 'an empty env variable is unset')
  t.equal(parseFlags(spec, ['--', '--port']).args[0], '--port', 'after -- everything is an argument')
  t.end()
})

t.test('strict: what would otherwise be a silent pick is a usage error', (t) => {
  const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--port', '1', '--port', '2'], {}, /^--port given more than once$/],
    [['--port=1', '--port=1'], {}, /^--port given more than once$/],
    [['--force', '--force'], {}, /^--force given more than once$/],
    [['-v', '--verbose'], {}, /^--verbose given more than once$/],
    [['--port'], {}, /^--port needs a value$/],
    [['--port', '--force'], {}, /^--port needs a value$/],
    [['-o'], {}, /^--out needs a value$/],
    [['--port='], {}, /^--port needs a non-empty value$/],
    [['--port', ''], {}, /^--port needs a non-empty value$/],
    [['--force=yes'], {}, /^--force takes no value$/],
    [['--mode', 'loud'], {}, /^--mode "loud" is not one of enforce, warn$/],
    [[], { DEMO_MODE: 'loud' }, /^DEMO_MODE "loud" is not one of enforce, warn$/],
    [['--nope'], {}, /^Unknown option '--nope'/],
    [['--prot', '1'], {}, /^Unknown option '--prot' \(Did you mean --port\?\)$/],
    [['a', 'b'], {}, /^unexpected argument 'b': neverpull-guard demo takes at most 1$/],
  ]
  for (const [argv, env, message] of cases) {
    t.throws(() => parseFlags(spec, argv, env), { name: 'UsageError', message }, argv.join(' ') || JSON.stringify(env))
  }
  const noArgs = { ...spec, maxArgs: 0, unknownFlag: (flag: string) => `unknown flag ${flag}` }
  t.throws(() => parseFlags(noArgs, ['x']), {
    message: "unexpected argument 'x': neverpull-guard demo takes no positional arguments",
  })
  t.throws(() => parseFlags(noArgs, ['--nope']), { message: 'unknown flag --nope' }, 'a command may use its own words')
  t.end()
})

t.test('parsing keeps no state between calls', (t) => {
  parseFlags(spec, ['--port', '1', '-f', 'a'])
  const again = parseFlags(spec, ['--port', '2', '-f', 'b'])
  t.equal(again.string('port'), '2')
  t.strictSame(again.strings('file'), ['b'])
  t.end()
})

t.test('help is generated from the same definitions', (t) => {
  const text = usage({ ...spec, footer: 'More words.' })
  t.match(text, /^Usage: neverpull-guard demo \[flags\]\n\nA demo command\.\n\nFlags:\n/)
  t.match(text, /^ {2}--port N +a port \(default 8443\) \[DEMO_PORT\]$/m)
  t.match(text, /^ {2}--mode MODE +a mode \(enforce \| warn\) \[DEMO_MODE\]$/m)
  t.match(text, /^ {2}-f, --file PATH +files \(repeatable\)$/m)
  t.match(text, /^ {2}-h, --help +show this help$/m)
  t.match(text, /\nMore words\.\n$/)
  for (const line of text.split('\n')) t.ok(line.length <= 100, `fits 100 columns: ${line}`)
  t.end()
})

t.test('durations and integers', (t) => {
  t.equal(durationValue('1m30s'), 90_000)
  t.equal(durationValue('0'), 0)
  t.throws(
    () => durationValue('10', '--interval'),
    new UsageError('--interval: invalid duration "10": use a number with a unit, e.g. 500ms, 10s, 5m, 1h'),
  )
  t.equal(integerValue('65535', '--port', 0, 65535), 65535)
  for (const bad of ['65536', '-1', '1.5', 'x', '1e3']) {
    t.throws(
      () => integerValue(bad, '--port', 0, 65535),
      { message: `--port "${bad}" is not a whole number from 0 to 65535` },
      bad,
    )
  }
  t.end()
})
