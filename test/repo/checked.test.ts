import t from 'tap'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { ESLint } from 'eslint'

// Every TypeScript file in the repository is type-checked by `npm run typecheck` and linted by
// `npm run lint`, fuzz/ and soak/ included (issue 12): a folder dropped from tsconfig.json's
// include or hidden by an ESLint ignore would otherwise rot without a red test.

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

function trackedTypeScript(): string[] {
  const out = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard', '*.ts'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
  return out
    .split('\0')
    .filter((f) => f !== '' && !f.endsWith('.d.ts'))
    .sort()
}

const files = trackedTypeScript()

t.test('the repository has TypeScript in every folder the tools must cover', async (t) => {
  for (const folder of ['src/', 'test/', 'bench/', 'scripts/', 'fuzz/', 'soak/'])
    t.ok(
      files.some((f) => f.startsWith(folder)),
      `${folder} has .ts files`,
    )
})

t.test('tsconfig.json includes every .ts file', async (t) => {
  const configPath = ts.findConfigFile(ROOT, (p) => ts.sys.fileExists(p), 'tsconfig.json')
  if (configPath === undefined) throw new Error('no tsconfig.json')
  const read = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p))
  if (read.error !== undefined) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'))
  const parsed = ts.parseJsonConfigFileContent(read.config as unknown, ts.sys, ROOT)
  const included = new Set(parsed.fileNames.map((f) => f.slice(ROOT.length)))
  t.same(
    files.filter((f) => !included.has(f)),
    [],
    'not type-checked by npm run typecheck',
  )
})

t.test('ESLint lints every .ts file', async (t) => {
  const eslint = new ESLint({ cwd: ROOT })
  const ignored: string[] = []
  for (const f of files) if (await eslint.isPathIgnored(f)) ignored.push(f)
  t.same(ignored, [], 'ignored by eslint.config.js')
})
