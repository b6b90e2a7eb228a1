// npm ci warns EBADENGINE when an installed package's engines.node excludes the running
// Node, and a package that says so may use what that Node lacks. Every production
// dependency must therefore accept every Node this project runs on: each version that
// package.json's engines allow, and the Node major of every stage of the Dockerfile (whose
// floating tag brings the newest release of that major, so the floor of engines applies
// within it).
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

// semver is what npm itself uses for engines; it is in the tree through client-node, and
// has no types here, so only the three calls used are declared.
interface Semver {
  validRange(range: string): string | null
  subset(sub: string, dom: string): boolean
  intersects(a: string, b: string): boolean
}
const semver = createRequire(import.meta.url)('semver') as Semver

interface LockEntry {
  version?: string
  dev?: boolean
  link?: boolean
  engines?: Record<string, string> | string[]
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
}
interface Lock {
  lockfileVersion: number
  packages: Record<string, LockEntry>
}

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  engines?: { node?: string }
  overrides?: Record<string, string>
}
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as Lock
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8')

const nameOf = (path: string): string => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)

/** Installed with `npm ci --omit=dev`: every lock entry npm does not mark dev-only. */
const production = Object.entries(lock.packages).filter(([path, e]) => path !== '' && e.dev !== true && e.link !== true)

/** Who pulls a package in, for the message: the production entries that depend on it. */
function dependents(name: string): string[] {
  return production
    .filter(([, e]) => Object.hasOwn(e.dependencies ?? {}, name) || Object.hasOwn(e.optionalDependencies ?? {}, name))
    .map(([path, e]) => `${nameOf(path)}@${e.version ?? '?'}`)
}

function nodeRange(e: LockEntry): string | undefined {
  // Old packages wrote engines as an array ("node >= 0.4"); npm ignores that form.
  if (e.engines === undefined || Array.isArray(e.engines)) return undefined
  return e.engines['node']
}

/** The Node majors of the Dockerfile's stages: node:NN-... and distroless nodejsNN-.... */
function dockerMajors(): { image: string; major: number }[] {
  const out: { image: string; major: number }[] = []
  for (const m of dockerfile.matchAll(/^FROM\s+(\S+)/gm)) {
    const image = m[1] as string
    const major = /(?:^|\/)node:(\d+)\b/.exec(image)?.[1] ?? /\/nodejs(\d+)-/.exec(image)?.[1]
    if (major !== undefined) out.push({ image, major: Number(major) })
  }
  return out
}

const engines = pkg.engines?.node
const lockRoot = lock.packages['']

t.test('package.json states the Node it supports, and the lock file agrees', (t) => {
  t.ok(engines !== undefined && semver.validRange(engines) !== null, `engines.node is a range (${engines})`)
  const rootEngines = lockRoot?.engines
  t.strictSame(
    Array.isArray(rootEngines) ? undefined : rootEngines?.['node'],
    engines,
    'package-lock.json carries the same engines',
  )
  t.equal(lock.lockfileVersion, 3, 'lockfile v3: packages with dev flags')
  t.end()
})

t.test('the Dockerfile runs one Node major, one that package.json supports, with the lock and its overrides', (t) => {
  const majors = dockerMajors()
  t.ok(majors.length >= 2, `Node stages found: ${majors.map((m) => m.image).join(', ')}`)
  const distinct = [...new Set(majors.map((m) => m.major))]
  t.equal(
    distinct.length,
    1,
    `every stage uses the same Node major (${majors.map((m) => `${m.image}: ${m.major}`).join(', ')})`,
  )
  const runtime = majors[majors.length - 1]
  t.match(runtime?.image ?? '', /distroless\/nodejs\d+/, 'the runtime stage is distroless Node')
  for (const { image, major } of majors) {
    t.ok(
      engines !== undefined && semver.intersects(`^${major}.0.0`, engines),
      `${image}: Node ${major} is allowed by engines ${engines}`,
    )
  }
  // Each npm ci must see the lock file (and so the overrides resolved into it).
  const stages = dockerfile.split(/^FROM\s/m).slice(1)
  const installing = stages.filter((s) => /npm ci/.test(s))
  t.ok(installing.length >= 2, 'the build and the production-dependency stages run npm ci')
  for (const s of installing) {
    const copy = s.search(/^COPY package\.json package-lock\.json \.\/$/m)
    t.ok(
      copy >= 0 && copy < s.search(/npm ci/),
      `stage "${s.split('\n')[0]}": package.json and the lock are copied before npm ci`,
    )
  }
  for (const [name, version] of Object.entries(pkg.overrides ?? {})) {
    const installed = production.filter(([path]) => nameOf(path) === name)
    t.ok(installed.length > 0, `override ${name} is in the production tree`)
    for (const [path, e] of installed) t.equal(e.version, version, `${path} is the overridden ${version}`)
  }
  t.end()
})

t.test('every production dependency accepts every Node we run on (no EBADENGINE)', (t) => {
  const floor = engines ?? '*'
  const major = dockerMajors().at(-1)?.major
  // The image's Node: the newest release of its major, so any one of them at or above our floor.
  const image = major === undefined ? undefined : `${floor} >=${major}.0.0 <${major + 1}.0.0-0`
  t.ok(production.length > 50, `${production.length} production packages in the lock file`)
  let checked = 0
  for (const [path, e] of production) {
    const range = nodeRange(e)
    if (range === undefined) continue
    checked++
    const who = `${nameOf(path)}@${e.version ?? '?'} (engines.node "${range}"; pulled in by ${dependents(nameOf(path)).join(', ') || 'package.json'})`
    if (semver.validRange(range) === null) {
      t.fail(`${who}: not a range npm can read`)
      continue
    }
    t.ok(semver.subset(floor, range), `${who} accepts every Node package.json allows (${floor})`)
    if (image !== undefined) t.ok(semver.subset(image, range), `${who} accepts the image's Node ${major} (${image})`)
  }
  t.ok(checked > 20, `${checked} production packages state engines.node`)
  t.end()
})
