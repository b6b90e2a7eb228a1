import t, { type Test } from 'tap'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createAgent, type Clock } from '../../src/agent/agent.js'
import type { NodeImageSetStatus, Publisher } from '../../src/agent/publish.js'
import { parseToml, readShortNameConfig, RegistriesConfError } from '../../src/agent/registries-conf.js'
import type { NodeImageSet, RuntimeImage } from '../../src/api/types.js'

// Issue 10 item 2, agent side: a CRI-O node's agent reads registries.conf and its drop-ins
// with containers/image v5 pkg/sysregistriesv2 system_registries_v2.go's rules
// (tryUpdatingCache, dropInConfigs, loadConfigFile, updateWithConfigurationFrom) and
// publishes spec.runtime.unqualifiedSearchRegistries and spec.runtime.shortNameAliases.

const FIXTURE = fileURLToPath(new URL('../fixtures/registries-conf/', import.meta.url))
const paths = { path: join(FIXTURE, 'registries.conf'), dir: join(FIXTURE, 'registries.conf.d') }

t.test('the fixture: main file, drop-ins in lexical order, only *.conf directly in the directory', async (t) => {
  const { config, files } = await readShortNameConfig(paths)
  t.same(config.unqualifiedSearchRegistries, ['registry.internal:5000', 'quay.io'], '50-search.conf replaces the list')
  t.same(
    config.shortNameAliases,
    {
      busybox: 'quay.io/prometheus/busybox',
      fedora: 'registry.fedoraproject.org/fedora',
      tool: 'ghcr.io/o/tool',
      ubi8: 'registry.access.redhat.com/ubi8',
    },
    'aliases merged name by name, the later file winning',
  )
  t.same(
    files.map((f) => f.slice(FIXTURE.length)),
    ['registries.conf', 'registries.conf.d/000-shortnames.conf', 'registries.conf.d/50-search.conf'],
  )
})

async function scratch(t: Test, files: Record<string, string>) {
  const dir = await mkdtemp(join(tmpdir(), 'npg-regconf-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await mkdir(join(dir, 'd'))
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text)
  return { path: join(dir, 'registries.conf'), dir: join(dir, 'd'), aliasCache: join(dir, 'cache.conf') }
}

t.test('merge rules', async (t) => {
  const table: Array<[string, Record<string, string>, string[] | RegExp, Record<string, string>?]> = [
    ['no files at all: empty, as containers/image', {}, []],
    [
      'v1 main file',
      {
        'registries.conf':
          '[registries.search]\nregistries = ["docker.io", "quay.io"]\n[registries.insecure]\nregistries = []\n',
      },
      ['docker.io', 'quay.io'],
    ],
    [
      'a drop-in setting [] empties the list',
      {
        'registries.conf': 'unqualified-search-registries = ["docker.io"]\n',
        'd/a.conf': 'unqualified-search-registries = []\n',
      },
      [],
    ],
    [
      'a drop-in without the key keeps it',
      {
        'registries.conf': 'unqualified-search-registries = ["docker.io"]\n',
        'd/a.conf': '[aliases]\n"x" = "quay.io/x"\n',
      },
      ['docker.io'],
      { x: 'quay.io/x' },
    ],
    [
      'v1 in a drop-in is an error',
      { 'd/a.conf': '[registries.search]\nregistries = ["docker.io"]\n' },
      /drop-in must use the v2 format/,
    ],
    [
      'mixing v1 and v2 is an error',
      {
        'registries.conf':
          'unqualified-search-registries = ["a.io"]\n[registries.search]\nregistries = ["docker.io"]\n',
      },
      /mixes the v1 format/,
    ],
    [
      'an alias with a tag is an error',
      { 'registries.conf': '[aliases]\n"x:1" = "quay.io/x"\n' },
      /must be a short name without tag or digest/,
    ],
    [
      'an alias to a short name is an error',
      { 'registries.conf': '[aliases]\n"x" = "me/x"\n' },
      /fully qualified name without tag or digest/,
    ],
    [
      'the alias cache comes first, and "" removes',
      {
        'registries.conf': '[aliases]\n"x" = "quay.io/x"\n"y" = "quay.io/y"\n',
        'cache.conf': '[aliases]\n"x" = "ghcr.io/x"\n"y" = ""\n',
      },
      [],
      { x: 'ghcr.io/x' },
    ],
    [
      'bad TOML names file and line',
      { 'registries.conf': 'unqualified-search-registries = ["a.io"]\n\nbad line\n' },
      /registries\.conf:3: expected "=" after a key/,
    ],
    [
      'a string where a list belongs',
      { 'registries.conf': 'unqualified-search-registries = "docker.io"\n' },
      /must be a list of strings/,
    ],
  ]
  for (const [name, files, want, aliases] of table) {
    const p = await scratch(t, files)
    if (want instanceof RegExp) {
      await t.rejects(readShortNameConfig(p), want, name)
      continue
    }
    const { config } = await readShortNameConfig(p)
    t.same(config.unqualifiedSearchRegistries, want, name)
    if (aliases !== undefined) t.same(config.shortNameAliases, aliases, `${name}: aliases`)
  }
})

t.test('TOML as registries.conf files write it', async (t) => {
  const doc = parseToml(
    [
      'a = "x\\ty\\u00e9"  # comment',
      "b = 'C:\\raw'",
      'c = """',
      'multi"line"""',
      'd = [1, 2_000, 3.5, true, false, 1979-05-27T07:32:00Z,',
      '  ["nested"], {k = "v", "q.k" = 1},',
      ']',
      'x.y = "dotted"',
      '[[t]]',
      'n = 1',
      '[[t]]',
      'n = 2',
      '[t.sub]',
      'm = 3',
    ].join('\n'),
    'f',
  )
  t.same(doc, {
    a: 'x\tyé',
    b: 'C:\\raw',
    c: 'multi"line',
    d: [1, 2000, 3.5, true, false, '1979-05-27T07:32:00Z', ['nested'], { k: 'v', 'q.k': 1 }],
    x: { y: 'dotted' },
    t: [{ n: 1 }, { n: 2, sub: { m: 3 } }],
  })
  t.throws(() => parseToml('a = 1\na = 2\n', 'f'), RegistriesConfError)
  t.throws(() => parseToml('a = "open\n', 'f'), /f:1: newline in a string/)
})

const clock: Clock = { now: () => 1_000_000, sleep: async () => {} }
class Recorder implements Publisher {
  applied: NodeImageSet[] = []
  async apply(set: NodeImageSet) {
    this.applied.push(structuredClone(set))
  }
  async applyStatus(_: string, __: NodeImageSetStatus) {}
}

t.test('a CRI-O node publishes its short-name configuration; containerd nodes do not read it', async (t) => {
  const image: RuntimeImage = {
    id: 'a'.repeat(64),
    repoTags: ['quay.io/me/app:1'],
    repoDigests: [],
    size: 1,
    pinned: false,
  }
  const run = async (name: string, registriesConf = paths) => {
    const publisher = new Recorder()
    const agent = createAgent({
      nodeName: 'n',
      cri: {
        listImages: async () => [image],
        imageStatus: async () => image,
        version: async () => ({ name, version: '1.30.0', endpoint: 'unix:///var/run/crio/crio.sock' }),
      },
      publisher,
      clock,
      registriesConf,
    })
    await agent.tick()
    return publisher.applied.at(-1)?.spec.runtime
  }
  const runtime = await run('cri-o')
  t.same(runtime?.unqualifiedSearchRegistries, ['registry.internal:5000', 'quay.io'])
  t.equal(runtime?.shortNameAliases?.['fedora'], 'registry.fedoraproject.org/fedora')
  const ctrd = await run('containerd')
  t.equal(ctrd?.unqualifiedSearchRegistries, undefined, 'containerd: docker.io is implied, nothing to publish')
  const p = await scratch(t, { 'registries.conf': 'broken' })
  const unreadable = await run('cri-o', p)
  t.equal(unreadable?.name, 'cri-o', 'still published')
  t.equal(
    unreadable?.unqualifiedSearchRegistries,
    undefined,
    'without the fields: the webhook calls short names unknown there',
  )
})
