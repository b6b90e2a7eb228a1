import { EventEmitter } from 'node:events'
import { Writable } from 'node:stream'
import t from 'tap'
import { main, programUsage, type CliIo } from '../../src/cli/main.js'

// The program in-process: every command answers --help with exit 0 and a bad flag with
// exit 2 and its usage error, without a child process.

function io(env: NodeJS.ProcessEnv = {}) {
  let out = ''
  let err = ''
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer | string, _enc, done) {
        append(chunk.toString())
        done()
      },
    })
  const value: CliIo = {
    stdout: sink((s) => (out += s)),
    stderr: sink((s) => (err += s)),
    stdin: () => Promise.resolve(''),
    env,
    signals: new EventEmitter(),
    now: () => Date.parse('2026-11-30T12:00:00Z'),
  }
  return { io: value, out: () => out, err: () => err }
}

t.test('no command: the command list, exit 2; help: exit 0', async (t) => {
  const none = io()
  t.equal(await main([], none.io), 2)
  t.equal(none.out(), programUsage())
  for (const name of ['webhook', 'agent', 'certs', 'check', 'where', 'explain', 'version']) {
    t.match(programUsage(), new RegExp(`^  ${name} +\\S`, 'm'), name)
  }
  for (const h of ['help', '--help', '-h']) {
    const c = io()
    t.equal(await main([h], c.io), 0, h)
  }
  const bad = io()
  t.equal(await main(['deploy'], bad.io), 2)
  t.match(bad.err(), /^neverpull-guard: unknown command "deploy"/)
})

t.test('version', async (t) => {
  const c = io()
  t.equal(await main(['version'], c.io), 0)
  t.match(c.out(), /^neverpull-guard \d+\.\d+\.\d+\n$/)
  const d = io()
  t.equal(await main(['--version'], d.io), 0)
  t.equal(d.out(), c.out())
})

t.test('every command: --help exits 0 with generated help on stdout', async (t) => {
  for (const name of ['webhook', 'agent', 'certs', 'check', 'where', 'explain']) {
    const c = io()
    t.equal(await main([name, '--help'], c.io), 0, name)
    t.match(c.out(), new RegExp(`^Usage: neverpull-guard ${name} `), `${name}: usage line`)
    t.match(c.out(), /^ {2}-h, --help +show this help$/m, `${name}: help flag listed`)
    t.equal(c.err(), '', `${name}: nothing on stderr`)
  }
})

t.test('every command: a bad flag exits 2 and says which', async (t) => {
  const cases: Array<[string[], RegExp, NodeJS.ProcessEnv?]> = [
    [['webhook', '--port', '70000'], /--port "70000" is not a whole number from 0 to 65535/],
    [['webhook', '--mode', 'loud'], /--mode "loud" is not one of enforce, warn, audit/],
    [['webhook', '--stale-after', '15'], /--stale-after: invalid duration "15"/],
    [['webhook', '--dev', '--dev'], /--dev given more than once/],
    [['webhook', '--tls-cert='], /--tls-cert needs a non-empty value/],
    [['webhook'], /NEVERPULL_LOG_LEVEL "loud" is not one of fatal, error/, { NEVERPULL_LOG_LEVEL: 'loud' }],
    [['webhook', 'extra'], /unexpected argument 'extra'/],
    [['agent', '--interval', '1m', '--interval', '2m'], /--interval given more than once/, { NODE_NAME: 'n' }],
    [['certs', '--days'], /--days needs a value/],
    [['check', '-f', 'x.yaml', '-o', 'yaml'], /--output "yaml" is not one of text, json/],
    [['check', '-o', 'json', '-o', 'text', '-f', 'x.yaml'], /--output given more than once/],
    [['where', 'a', 'b'], /unexpected argument 'b'/],
    [['explain', '--namespace'], /--namespace needs a value/],
  ]
  for (const [argv, message, env] of cases) {
    const c = io(env)
    t.equal(await main(argv, c.io), 2, argv.join(' '))
    t.match(c.err(), message, argv.join(' '))
    t.equal(c.out(), '', `${argv.join(' ')}: nothing on stdout`)
  }
})

t.test('check runs in-process against a static inventory', async (t) => {
  const c = io()
  const pod = JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', namespace: 'default' },
    spec: { containers: [{ name: 'app', image: 'nginx:1.27', imagePullPolicy: 'IfNotPresent' }] },
  })
  c.io.stdin = () => Promise.resolve(pod)
  t.equal(
    await main(['check', '-f', '-', '--inventory-file', 'examples/inventory.yaml', '-o', 'json'], c.io),
    0,
    c.err(),
  )
  t.match(JSON.parse(c.out()) as unknown, { summary: { checked: 1, denied: 0 } })
})
