import t from 'tap'
import { ANY_REGISTRY, isPullable, normaliseRegistry, parsePullableRegistries } from '../../src/api/registries.js'
import { registryOf } from '../../src/image/registry.js'

t.test('the registry of an image, normalised like distribution/reference', (t) => {
  const table: Array<[string, string | undefined]> = [
    ['nginx', 'docker.io'],
    ['nginx:1.27', 'docker.io'],
    ['me/app:1', 'docker.io'],
    ['docker.io/library/nginx', 'docker.io'],
    ['index.docker.io/library/nginx', 'docker.io'],
    ['localhost/app', 'localhost'],
    ['localhost:5000/app:1', 'localhost:5000'],
    ['registry.corp:5000/team/app@sha256:' + 'a'.repeat(64), 'registry.corp:5000'],
    ['Registry.Corp/app', 'registry.corp'],
    ['[::1]:5000/app', '[::1]:5000'],
    ['ghcr.io/o/a', 'ghcr.io'],
    ['corp/app', 'docker.io'],
    ['sha256:' + 'a'.repeat(64), undefined],
    ['Not A Reference', undefined],
  ]
  for (const [image, registry] of table) t.equal(registryOf(image), registry, image)
  t.end()
})

t.test('parsing the list: *, none, hosts with ports, Docker Hub aliases, clear errors', (t) => {
  const ok: Array<[string, string[] | '*']> = [
    ['*', '*'],
    ['registry.corp, *', '*'],
    ['none', []],
    ['registry.corp:5000', ['registry.corp:5000']],
    [' registry.corp , localhost:5000,,localhost ', ['registry.corp', 'localhost:5000', 'localhost']],
    ['index.docker.io,registry-1.docker.io,DOCKER.IO', ['docker.io']],
    ['[::1]:5000', ['[::1]:5000']],
  ]
  for (const [text, hosts] of ok) {
    const parsed = parsePullableRegistries(text)
    t.ok(parsed.ok, text)
    if (!parsed.ok) continue
    if (hosts === '*') t.equal(parsed.value.any, true, `${text}: any`)
    else t.same([...parsed.value.hosts], hosts, text)
  }
  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    [' , ', /empty/],
    ['https://registry.corp', /without scheme or path/],
    ['registry.corp/team', /without scheme or path/],
    ['corp', /can never be the registry.*docker\.io\/corp\/app/],
    ['none,registry.corp', /can never be the registry/],
    ['under_score.corp', /not a registry host/],
    ['registry.corp:port', /not a registry host/],
  ]
  for (const [text, error] of bad) {
    const parsed = parsePullableRegistries(text)
    t.equal(parsed.ok, false, `"${text}" is refused`)
    if (!parsed.ok) t.match(parsed.error, error, text)
  }
  t.end()
})

t.test('matching: exact host and port after normalisation', (t) => {
  const parsed = parsePullableRegistries('registry.corp:5000,localhost,docker.io')
  t.ok(parsed.ok)
  if (!parsed.ok) return t.end()
  const p = parsed.value
  const table: Array<[string, boolean]> = [
    ['registry.corp:5000/app', true],
    ['registry.corp/app', false],
    ['registry.corp:5001/app', false],
    ['localhost/app', true],
    ['localhost:5000/app', false],
    ['nginx', true],
    ['index.docker.io/me/app', true],
    ['ghcr.io/o/a', false],
  ]
  for (const [image, pullable] of table) t.equal(isPullable(p, registryOf(image)!), pullable, image)
  t.equal(isPullable(ANY_REGISTRY, 'anything.example'), true, '* takes everything')
  t.equal(normaliseRegistry('Index.Docker.IO'), 'docker.io')
  t.end()
})
