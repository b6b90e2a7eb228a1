import t from 'tap'
import {
  crioCandidateKeys,
  isShortName,
  kubeletImageString,
  localhostKey,
  parseUnnormalized,
  type ShortNameConfig,
} from '../../src/image/crio.js'

// CRI-O's lookup of a container image (issue 10 item 2): cri-o internal/storage/image.go
// CandidatesForPotentiallyShortImageName -> containers/image v5 pkg/shortnames/shortnames.go
// Resolve (parseUnnormalizedShortName, the alias first, then one candidate per
// unqualified-search registry, mode forced to "disabled"), after the kubelet's
// applyDefaultImageTag (pkg/kubelet/images/image_manager.go).

const h64 = 'a'.repeat(64)
const quayFirst: ShortNameConfig = {
  unqualifiedSearchRegistries: ['quay.io', 'docker.io'],
  shortNameAliases: { fedora: 'registry.fedoraproject.org/fedora' },
}
const noHub: ShortNameConfig = { unqualifiedSearchRegistries: ['registry.example.com'], shortNameAliases: {} }
const none: ShortNameConfig = { unqualifiedSearchRegistries: [], shortNameAliases: {} }

t.test('what the kubelet sends', async (t) => {
  t.equal(kubeletImageString('myapp'), 'myapp:latest')
  t.equal(kubeletImageString('myapp:dev'), 'myapp:dev')
  t.equal(kubeletImageString('me/app@sha256:' + h64), 'me/app@sha256:' + h64)
  t.equal(
    kubeletImageString('4d1f0e2c7a9b'),
    '4d1f0e2c7a9b:latest',
    'bare hex gets a tag: never an ID prefix through the kubelet',
  )
})

t.test('short or qualified, as containers/image reads it (reference.Parse, not normalised)', async (t) => {
  const table: Array<[string, boolean]> = [
    ['myapp:dev', true],
    ['me/app:1', true],
    ['library/nginx:latest', true],
    ['sha256:' + h64, true],
    ['quay.io/me/app:1', false],
    ['localhost/myapp:dev', false],
    ['localhost:5000/app:1', false],
    ['docker.io/library/nginx:1', false],
    ['[::1]:5000/app:1', false],
  ]
  for (const [s, short] of table) {
    const n = parseUnnormalized(s)
    t.ok(n !== undefined && isShortName(n) === short, `${s}: ${short ? 'short' : 'qualified'}`)
  }
  t.equal(parseUnnormalized('Me/App:1'), undefined, 'uppercase path: no reference')
  t.equal(
    parseUnnormalized('a'.repeat(120) + '/' + 'b'.repeat(140) + ':1'),
    undefined,
    'the whole name, domain included, is at most 255 characters',
  )
})

t.test('candidate keys, in order', async (t) => {
  const table: Array<[string, ShortNameConfig, string[], string]> = [
    ['me/app:1', quayFirst, ['quay.io/me/app:1', 'docker.io/me/app:1'], 'each search registry in order'],
    ['myapp:dev', quayFirst, ['quay.io/myapp:dev', 'docker.io/library/myapp:dev'], 'docker.io normalises to library/'],
    ['myapp:dev', noHub, ['registry.example.com/myapp:dev'], 'docker.io is not implied'],
    ['myapp', noHub, ['registry.example.com/myapp:latest'], ':latest from the kubelet'],
    ['myapp:dev', none, [], 'no search registry and no alias: nothing (Resolve fails)'],
    ['fedora:39', quayFirst, ['registry.fedoraproject.org/fedora:39'], 'an alias is the only candidate'],
    ['fedora', quayFirst, ['registry.fedoraproject.org/fedora:latest'], 'alias with the default tag'],
    ['fedora@sha256:' + h64, quayFirst, ['registry.fedoraproject.org/fedora@sha256:' + h64], 'alias keeps the digest'],
    [
      'sha256:' + h64,
      noHub,
      ['registry.example.com/sha256:' + h64],
      'sha256:<hex> is the short name "sha256", not an ID',
    ],
    ['sha256:4d1f', noHub, ['registry.example.com/sha256:4d1f'], 'no truncated-ID fallback on CRI-O'],
    ['quay.io/me/app:1', none, ['quay.io/me/app:1'], 'qualified: itself'],
    ['docker.io/nginx', none, ['docker.io/library/nginx:latest'], 'qualified docker.io is normalised'],
    ['localhost/myapp:dev', none, ['localhost/myapp:dev'], 'a podman build'],
    [
      'me/app:v1@sha256:' + h64,
      quayFirst,
      ['quay.io/me/app@sha256:' + h64, 'docker.io/me/app@sha256:' + h64],
      'tag and digest: the digest decides',
    ],
    [
      'myapp:dev',
      { unqualifiedSearchRegistries: ['quay.io', 'Bad_Host!'], shortNameAliases: {} },
      [],
      'one invalid candidate fails the whole lookup',
    ],
  ]
  for (const [image, config, keys, why] of table)
    t.same(crioCandidateKeys(image, config).keys, keys, `${image}: ${why}`)
  t.same(
    crioCandidateKeys('me/app:1', undefined),
    { keys: [], short: true },
    'configuration unknown: short names cannot be answered',
  )
  t.same(
    crioCandidateKeys('quay.io/me/app:1', undefined),
    { keys: ['quay.io/me/app:1'], short: false },
    'but qualified names can',
  )
})

t.test('the localhost spelling of a short name', async (t) => {
  t.equal(localhostKey('myapp:dev'), 'localhost/myapp:dev')
  t.equal(localhostKey('myapp'), 'localhost/myapp:latest')
  t.equal(localhostKey('quay.io/me/app:1'), undefined)
})
