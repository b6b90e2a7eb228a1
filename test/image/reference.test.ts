import t from 'tap'
import type { RuntimeImage } from '../../src/api/types.js'
import {
  dockerRef,
  familiarName,
  isIdKey,
  lookupKey,
  nodeStatusImageKey,
  parseReference,
  repositoryOf,
  repositoryOfKey,
  runtimeImageKeys,
  shortRef,
  type ImageReference,
} from '../../src/image/reference.js'

// Vectors come from github.com/distribution/reference (reference_test.go, normalize_test.go)
// where they exist, run through ParseNormalizedNamed semantics, plus the cases this project
// meets in pod specs and runtime listings.

const h64 = '0123456789abcdef'.repeat(4)
const h96 = '0123456789abcdef'.repeat(6)
const h128 = '0123456789abcdef'.repeat(8)
const H64 = h64.toUpperCase()
const redis = 'dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c'

// input, domain, path, tag, digest, dockerRef, familiar
type Valid = [string, string, string, string | undefined, string | undefined, string, string]
const valid: Valid[] = [
  ['nginx', 'docker.io', 'library/nginx', undefined, undefined, 'docker.io/library/nginx:latest', 'nginx'],
  ['nginx:latest', 'docker.io', 'library/nginx', 'latest', undefined, 'docker.io/library/nginx:latest', 'nginx:latest'],
  ['nginx:1.27', 'docker.io', 'library/nginx', '1.27', undefined, 'docker.io/library/nginx:1.27', 'nginx:1.27'],
  ['library/nginx', 'docker.io', 'library/nginx', undefined, undefined, 'docker.io/library/nginx:latest', 'nginx'],
  ['docker.io/nginx', 'docker.io', 'library/nginx', undefined, undefined, 'docker.io/library/nginx:latest', 'nginx'],
  [
    'docker.io/library/nginx:1.27',
    'docker.io',
    'library/nginx',
    '1.27',
    undefined,
    'docker.io/library/nginx:1.27',
    'nginx:1.27',
  ],
  [
    'index.docker.io/library/nginx:1',
    'docker.io',
    'library/nginx',
    '1',
    undefined,
    'docker.io/library/nginx:1',
    'nginx:1',
  ],
  [
    'index.docker.io/nginx',
    'docker.io',
    'library/nginx',
    undefined,
    undefined,
    'docker.io/library/nginx:latest',
    'nginx',
  ],
  ['index.docker.io/fooo/bar', 'docker.io', 'fooo/bar', undefined, undefined, 'docker.io/fooo/bar:latest', 'fooo/bar'],
  ['me/app:1', 'docker.io', 'me/app', '1', undefined, 'docker.io/me/app:1', 'me/app:1'],
  ['docker.io/me/app:1', 'docker.io', 'me/app', '1', undefined, 'docker.io/me/app:1', 'me/app:1'],
  [
    'other/library',
    'docker.io',
    'other/library',
    undefined,
    undefined,
    'docker.io/other/library:latest',
    'other/library',
  ],
  [
    'library/foo/bar',
    'docker.io',
    'library/foo/bar',
    undefined,
    undefined,
    'docker.io/library/foo/bar:latest',
    'library/foo/bar',
  ],
  [
    'store/foo/bar',
    'docker.io',
    'store/foo/bar',
    undefined,
    undefined,
    'docker.io/store/foo/bar:latest',
    'store/foo/bar',
  ],
  [
    'ubuntu-12.04-base',
    'docker.io',
    'library/ubuntu-12.04-base',
    undefined,
    undefined,
    'docker.io/library/ubuntu-12.04-base:latest',
    'ubuntu-12.04-base',
  ],
  ['localhost/app', 'localhost', 'app', undefined, undefined, 'localhost/app:latest', 'localhost/app'],
  [
    'localhost:5000/app',
    'localhost:5000',
    'app',
    undefined,
    undefined,
    'localhost:5000/app:latest',
    'localhost:5000/app',
  ],
  [
    'localhost:5000/app:dev',
    'localhost:5000',
    'app',
    'dev',
    undefined,
    'localhost:5000/app:dev',
    'localhost:5000/app:dev',
  ],
  // Without a "/" nothing is a domain, not even localhost or a dotted name (splitDockerDomain fast path).
  [
    'localhost',
    'docker.io',
    'library/localhost',
    undefined,
    undefined,
    'docker.io/library/localhost:latest',
    'localhost',
  ],
  [
    'localhost:5000',
    'docker.io',
    'library/localhost',
    '5000',
    undefined,
    'docker.io/library/localhost:5000',
    'localhost:5000',
  ],
  [
    'example.com',
    'docker.io',
    'library/example.com',
    undefined,
    undefined,
    'docker.io/library/example.com:latest',
    'example.com',
  ],
  [
    '192.168.0.1',
    'docker.io',
    'library/192.168.0.1',
    undefined,
    undefined,
    'docker.io/library/192.168.0.1:latest',
    '192.168.0.1',
  ],
  [
    '192.168.0.1:80',
    'docker.io',
    'library/192.168.0.1',
    '80',
    undefined,
    'docker.io/library/192.168.0.1:80',
    '192.168.0.1:80',
  ],
  [
    '192.168.0.1:8/debian',
    '192.168.0.1:8',
    'debian',
    undefined,
    undefined,
    '192.168.0.1:8/debian:latest',
    '192.168.0.1:8/debian',
  ],
  ['127.0.0.1:5000/a/b:c', '127.0.0.1:5000', 'a/b', 'c', undefined, '127.0.0.1:5000/a/b:c', '127.0.0.1:5000/a/b:c'],
  [
    '127.0.0.1:5000/library/debian',
    '127.0.0.1:5000',
    'library/debian',
    undefined,
    undefined,
    '127.0.0.1:5000/library/debian:latest',
    '127.0.0.1:5000/library/debian',
  ],
  ['[::1]:5000/app:1', '[::1]:5000', 'app', '1', undefined, '[::1]:5000/app:1', '[::1]:5000/app:1'],
  ['[2001:db8::1]/x', '[2001:db8::1]', 'x', undefined, undefined, '[2001:db8::1]/x:latest', '[2001:db8::1]/x'],
  [
    '[2001:db8::]:5000/repo',
    '[2001:db8::]:5000',
    'repo',
    undefined,
    undefined,
    '[2001:db8::]:5000/repo:latest',
    '[2001:db8::]:5000/repo',
  ],
  [
    '[fc00:1:2:3:4:5:6:7]:5000/library/debian',
    '[fc00:1:2:3:4:5:6:7]:5000',
    'library/debian',
    undefined,
    undefined,
    '[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest',
    '[fc00:1:2:3:4:5:6:7]:5000/library/debian',
  ],
  [
    '[FE80::1]:5000/app',
    '[FE80::1]:5000',
    'app',
    undefined,
    undefined,
    '[FE80::1]:5000/app:latest',
    '[FE80::1]:5000/app',
  ],
  [
    '[2001:db8::1]:5000/repo:tag@sha256:' + h64,
    '[2001:db8::1]:5000',
    'repo',
    'tag',
    'sha256:' + h64,
    '[2001:db8::1]:5000/repo@sha256:' + h64,
    '[2001:db8::1]:5000/repo:tag@sha256:' + h64,
  ],
  [
    'registry.example.com/team/app@sha256:' + h64,
    'registry.example.com',
    'team/app',
    undefined,
    'sha256:' + h64,
    'registry.example.com/team/app@sha256:' + h64,
    'registry.example.com/team/app@sha256:' + h64,
  ],
  [
    'ghcr.io/o/a@sha256:' + h64,
    'ghcr.io',
    'o/a',
    undefined,
    'sha256:' + h64,
    'ghcr.io/o/a@sha256:' + h64,
    'ghcr.io/o/a@sha256:' + h64,
  ],
  [
    'busybox:latest@sha256:' + h64,
    'docker.io',
    'library/busybox',
    'latest',
    'sha256:' + h64,
    'docker.io/library/busybox@sha256:' + h64,
    'busybox:latest@sha256:' + h64,
  ],
  [
    'redis@sha256:' + redis,
    'docker.io',
    'library/redis',
    undefined,
    'sha256:' + redis,
    'docker.io/library/redis@sha256:' + redis,
    'redis@sha256:' + redis,
  ],
  [
    'dmcgowan/myapp@sha256:' + redis,
    'docker.io',
    'dmcgowan/myapp',
    undefined,
    'sha256:' + redis,
    'docker.io/dmcgowan/myapp@sha256:' + redis,
    'dmcgowan/myapp@sha256:' + redis,
  ],
  ['a.io/x@sha384:' + h96, 'a.io', 'x', undefined, 'sha384:' + h96, 'a.io/x@sha384:' + h96, 'a.io/x@sha384:' + h96],
  [
    'xn--7o8h.com/myimage:xn--7o8h.com@sha512:' + h128,
    'xn--7o8h.com',
    'myimage',
    'xn--7o8h.com',
    'sha512:' + h128,
    'xn--7o8h.com/myimage@sha512:' + h128,
    'xn--7o8h.com/myimage:xn--7o8h.com@sha512:' + h128,
  ],
  [
    'xn--n3h.com/myimage:xn--n3h.com',
    'xn--n3h.com',
    'myimage',
    'xn--n3h.com',
    undefined,
    'xn--n3h.com/myimage:xn--n3h.com',
    'xn--n3h.com/myimage:xn--n3h.com',
  ],
  [
    'xn--n3h.com:18080/foo',
    'xn--n3h.com:18080',
    'foo',
    undefined,
    undefined,
    'xn--n3h.com:18080/foo:latest',
    'xn--n3h.com:18080/foo',
  ],
  [
    'sub-dom1.foo.com/bar/baz/quux:some-long-tag',
    'sub-dom1.foo.com',
    'bar/baz/quux',
    'some-long-tag',
    undefined,
    'sub-dom1.foo.com/bar/baz/quux:some-long-tag',
    'sub-dom1.foo.com/bar/baz/quux:some-long-tag',
  ],
  [
    'b.gcr.io/test.example.com/my-app:test.example.com',
    'b.gcr.io',
    'test.example.com/my-app',
    'test.example.com',
    undefined,
    'b.gcr.io/test.example.com/my-app:test.example.com',
    'b.gcr.io/test.example.com/my-app:test.example.com',
  ],
  ['test:5000/repo', 'test:5000', 'repo', undefined, undefined, 'test:5000/repo:latest', 'test:5000/repo'],
  ['test-com:8080/foo', 'test-com:8080', 'foo', undefined, undefined, 'test-com:8080/foo:latest', 'test-com:8080/foo'],
  ['test_com/foo', 'docker.io', 'test_com/foo', undefined, undefined, 'docker.io/test_com/foo:latest', 'test_com/foo'],
  [
    'foo/foo_bar.com:8080',
    'docker.io',
    'foo/foo_bar.com',
    '8080',
    undefined,
    'docker.io/foo/foo_bar.com:8080',
    'foo/foo_bar.com:8080',
  ],
  ['a__b/c', 'docker.io', 'a__b/c', undefined, undefined, 'docker.io/a__b/c:latest', 'a__b/c'],
  ['a---b', 'docker.io', 'library/a---b', undefined, undefined, 'docker.io/library/a---b:latest', 'a---b'],
  ['a.b_c', 'docker.io', 'library/a.b_c', undefined, undefined, 'docker.io/library/a.b_c:latest', 'a.b_c'],
  [
    'docker---rules/docker',
    'docker.io',
    'docker---rules/docker',
    undefined,
    undefined,
    'docker.io/docker---rules/docker:latest',
    'docker---rules/docker',
  ],
  [
    'dock__er/docker',
    'docker.io',
    'dock__er/docker',
    undefined,
    undefined,
    'docker.io/dock__er/docker:latest',
    'dock__er/docker',
  ],
  ['d/docker', 'docker.io', 'd/docker', undefined, undefined, 'docker.io/d/docker:latest', 'd/docker'],
  ['jess/t', 'docker.io', 'jess/t', undefined, undefined, 'docker.io/jess/t:latest', 'jess/t'],
  [
    'lowercase:Uppercase',
    'docker.io',
    'library/lowercase',
    'Uppercase',
    undefined,
    'docker.io/library/lowercase:Uppercase',
    'lowercase:Uppercase',
  ],
  ['nginx:_x', 'docker.io', 'library/nginx', '_x', undefined, 'docker.io/library/nginx:_x', 'nginx:_x'],
  // An uppercase first component is a domain (distribution's own FIXME, kept for compatibility).
  ['Example.com/app', 'Example.com', 'app', undefined, undefined, 'Example.com/app:latest', 'Example.com/app'],
  ['Foo/bar', 'Foo', 'bar', undefined, undefined, 'Foo/bar:latest', 'Foo/bar'],
  ['DOCKER/docker', 'DOCKER', 'docker', undefined, undefined, 'DOCKER/docker:latest', 'DOCKER/docker'],
  // A first component with "." that is not a valid host is read as a path with no domain.
  ['foo_bar.com/x', '', 'foo_bar.com/x', undefined, undefined, 'foo_bar.com/x:latest', 'foo_bar.com/x'],
  // 64 hex is refused only as the whole string; with a domain, a tag, or 63 chars it is a name.
  [
    'docker.io/' + redis,
    'docker.io',
    'library/' + redis,
    undefined,
    undefined,
    'docker.io/library/' + redis + ':latest',
    redis,
  ],
  [
    redis + ':v1',
    'docker.io',
    'library/' + redis,
    'v1',
    undefined,
    'docker.io/library/' + redis + ':v1',
    redis + ':v1',
  ],
  [
    redis.slice(0, 63),
    'docker.io',
    'library/' + redis.slice(0, 63),
    undefined,
    undefined,
    'docker.io/library/' + redis.slice(0, 63) + ':latest',
    redis.slice(0, 63),
  ],
  // parseReference reads a bare digest as image "sha256" with a 64-character tag (lookupKey treats it as an ID).
  ['sha256:' + h64, 'docker.io', 'library/sha256', h64, undefined, 'docker.io/library/sha256:' + h64, 'sha256:' + h64],
  [
    'thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev',
    'docker.io',
    'library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev',
    undefined,
    undefined,
    'docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest',
    'thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev',
  ],
]

t.test('parseReference: valid references', async (t) => {
  for (const [input, domain, path, tag, digest, ref, familiar] of valid) {
    const p = parseReference(input)
    if (!p.ok) {
      t.fail(`${input}: ${p.error}`)
      continue
    }
    t.same(
      { domain: p.ref.domain, path: p.ref.path, tag: p.ref.tag, digest: p.ref.digest },
      { domain, path, tag, digest },
      input,
    )
    t.equal(dockerRef(p.ref), ref, `dockerRef ${input}`)
    t.equal(familiarName(p.ref), familiar, `familiarName ${input}`)
    t.equal(repositoryOf(p.ref), domain === '' ? path : domain + '/' + path, `repositoryOf ${input}`)
    // The familiar form reads back to the same reference, except where distribution's does not
    // either: docker.io/library/<64 hex> shortens to the bare hex, which is refused as an ID.
    if (familiar.length === 64 && /^[a-f0-9]+$/.test(familiar)) continue
    const again = parseReference(familiar)
    t.ok(again.ok && dockerRef(again.ref) === ref, `round trip ${input}`)
  }
})

// input, a fragment the error must contain
const invalid: Array<[string, string]> = [
  ['', 'empty'],
  [' ', 'whitespace'],
  ['nginx ', 'whitespace'],
  [' nginx', 'whitespace'],
  ['ng inx', 'whitespace'],
  ['nginx\n', 'whitespace'],
  ['nginx\t:1', 'whitespace'],
  ['Nginx', 'must be lowercase'],
  ['NGINX:1.27', 'must be lowercase'],
  ['Uppercase:tag', 'must be lowercase'],
  ['docker/Docker', 'must be lowercase'],
  ['docker.io/docker/Docker', 'must be lowercase'],
  ['test:5000/Uppercase/lowercase:tag', 'must be lowercase'],
  ['me/App:1', 'must be lowercase'],
  ['nginx:', 'expected a tag'],
  [':tag', 'repository name is empty'],
  [':justtag', 'repository name is empty'],
  ['@sha256:' + h64, 'repository name is empty'],
  ['nginx@', 'expected a digest'],
  ['nginx@sha256:short', 'sha256 needs 64 hex characters'],
  ['repo@sha256:' + 'f'.repeat(34), 'sha256 needs 64 hex characters'],
  ['nginx@sha256:' + h64 + '0', 'sha256 needs 64 hex characters'],
  ['nginx@sha256:' + H64, 'lowercase hex'],
  ['nginx@sha256:' + 'g'.repeat(64), 'lowercase hex'],
  ['validname@invaliddigest:' + h64, 'unsupported digest algorithm'],
  ['nginx@md5:' + h64.slice(0, 32), 'unsupported digest algorithm'],
  ['nginx@' + h64, 'expected algorithm:hex'],
  ['nginx@sha256:' + h64 + '@sha256:' + h64, 'more than one "@"'],
  ['a//b', 'empty path component'],
  ['docker///docker', 'empty path component'],
  ['docker.io/docker///docker', 'empty path component'],
  ['docker/', 'empty path component'],
  ['/a', 'empty path component'],
  ['localhost:5000/', 'empty path component'],
  ['-a', 'invalid path component "-a"'],
  ['a-', 'invalid path component "a-"'],
  ['-docker', 'invalid path component'],
  ['-docker/docker', 'invalid path component'],
  ['docker-/docker', 'invalid path component'],
  ['-docker-/docker', 'invalid path component'],
  ['-docker.io/docker/docker', 'invalid registry host'],
  ['____/____', 'invalid path component'],
  ['_docker/_docker', 'invalid path component'],
  ['dock..er/docker', 'invalid registry host'], // a "." makes it a host to distribution
  ['dock_.er/docker', 'invalid registry host'], // a "." makes it a host to distribution
  ['dock-.er/docker', 'invalid registry host'], // a "." makes it a host to distribution
  ['a___b', 'invalid path component'],
  ['aa/asdf$$^/aa', 'invalid path component'],
  ['a:b:c', 'too many ":"'],
  ['nginx:-tag', 'invalid tag'],
  ['nginx:.tag', 'invalid tag'],
  ['nginx:ta+g', 'invalid tag'],
  ['https://github.com/docker/docker', 'invalid'],
  ['[fc00::1]', 'needs a repository'],
  ['[fc00::1]:5000', 'needs a repository'],
  ['[2001:db8::1]:tag', 'invalid'],
  ['fc00::1:5000/debian', 'invalid registry host'],
  ['[fe80::1%eth0]:5000/debian', 'invalid registry host'],
  ['[fe80::1%@invalidzone]:5000/repo', 'invalid'],
  ['[2001:db8:3:4::192.0.2.33]:5000/debian', 'invalid registry host'],
  ['a.b:5000x/c', 'invalid'],
  ['ex_ample.com:5000/app', 'invalid registry host'],
  [redis, 'cannot specify 64-byte hexadecimal strings'],
  [h64, 'cannot specify 64-byte hexadecimal strings'],
  ['nginx:1.27\u00e9', 'invalid tag'],
  ['ngïnx', 'invalid path component'],
]

t.test('parseReference: invalid references', async (t) => {
  for (const [input, fragment] of invalid) {
    const p = parseReference(input)
    if (p.ok) {
      t.fail(`${JSON.stringify(input)} parsed as ${dockerRef(p.ref)}`)
      continue
    }
    t.ok(p.error.startsWith(`invalid reference ${JSON.stringify(input)}: `), `error names the input: ${p.error}`)
    t.match(p.error, fragment, JSON.stringify(input))
  }
})

t.test('parseReference: error wording', async (t) => {
  t.same(parseReference('Nginx:1'), {
    ok: false,
    error: 'invalid reference "Nginx:1": repository name must be lowercase',
  })
  t.same(parseReference(''), { ok: false, error: 'invalid reference "": image reference is empty' })
  const long = parseReference('a'.repeat(1000) + ' ')
  t.ok(!long.ok && long.error.length < 300, 'a huge input is cut in the message')
})

t.test('parseReference: length limits', async (t) => {
  const tag128 = 'a'.repeat(128)
  t.ok(parseReference('nginx:' + tag128).ok, 'tag of 128')
  const tag129 = parseReference('nginx:' + 'a'.repeat(129))
  t.ok(!tag129.ok && tag129.error.includes('more than 128 characters'), 'tag of 129')

  // The repository path is limited to 255; the domain does not count (distribution/reference v0.6).
  const p255 = 'team/' + 'a'.repeat(250)
  const ok = parseReference('registry.example.com/' + p255 + ':1')
  t.ok(ok.ok && ok.ref.path.length === 255, 'path of 255 behind a registry')
  const too = parseReference('registry.example.com/' + p255 + 'a:1')
  t.ok(!too.ok && too.error.includes('must not be more than 255 characters'), 'path of 256')
  t.ok(parseReference('a'.repeat(300) + '.example.com/app').ok, 'a long domain is not counted')
  t.ok(parseReference('registry.example.com:5000/' + 'a'.repeat(255)).ok, 'repository name of 255 + domain')

  // Docker Hub normalisation counts: `library/` is part of the path that is measured.
  t.ok(parseReference('x'.repeat(247)).ok, 'library/ + 247 = 255')
  t.notOk(parseReference('x'.repeat(248)).ok, 'library/ + 248 = 256')
  t.ok(parseReference('me/' + 'a'.repeat(252)).ok, 'me/ + 252 = 255')
  t.notOk(parseReference('me/' + 'a'.repeat(253)).ok, 'me/ + 253 = 256')
  // reference_test.go: 128 "a/" then "a" (path 257 under docker.io) is too long, 127 is fine.
  t.notOk(parseReference('a/'.repeat(128) + 'a:tag').ok, 'a/ x128 + a')
  t.ok(parseReference('a/'.repeat(127) + 'a:tag-puts-this-over-max').ok, 'a/ x127 + a')
  const ns = 'this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_'.repeat(4) + '/docker'
  t.notOk(parseReference(ns).ok, 'namespace too long')
})

t.test('parseReference: linear time on hostile input', async (t) => {
  const inputs = [
    'a'.repeat(200_000) + '!',
    'a-'.repeat(100_000) + '!',
    'a.'.repeat(100_000) + '/!',
    'a/'.repeat(100_000) + '!',
    'a__'.repeat(60_000) + '_',
    'a.a-'.repeat(50_000) + ':' + 'b'.repeat(100_000),
    'x.io/' + 'a'.repeat(100) + ':' + 't'.repeat(100_000),
  ]
  const start = performance.now()
  for (const s of inputs) t.notOk(parseReference(s).ok)
  // A bound far from any machine's speed: a quadratic parser takes minutes on these inputs.
  t.ok(performance.now() - start < 30_000, `took ${Math.round(performance.now() - start)} ms`)
})

t.test('lookupKey', async (t) => {
  const cases: Array<[string, string]> = [
    ['nginx', 'docker.io/library/nginx:latest'],
    ['nginx:1.27', 'docker.io/library/nginx:1.27'],
    ['docker.io/library/nginx:1.27', 'docker.io/library/nginx:1.27'],
    ['index.docker.io/nginx:1.27', 'docker.io/library/nginx:1.27'],
    ['me/app', 'docker.io/me/app:latest'],
    ['localhost:5000/app', 'localhost:5000/app:latest'],
    ['busybox:1.36@sha256:' + h64, 'docker.io/library/busybox@sha256:' + h64],
    ['ghcr.io/o/a@sha256:' + h64, 'ghcr.io/o/a@sha256:' + h64],
    // An ID on its own is looked up by ID, as containerd's LocalResolve does.
    ['sha256:' + h64, 'sha256:' + h64],
    ['sha512:' + h128, 'sha512:' + h128],
    // Not a valid digest: the kubelet reads it as image "sha256" with that tag, and so does containerd.
    ['sha256:abc', 'docker.io/library/sha256:abc'],
    ['sha256:' + H64, 'docker.io/library/sha256:' + H64],
  ]
  for (const [image, key] of cases) {
    const k = lookupKey(image)
    t.ok(k.ok && k.key === key, `${image} -> ${key}${k.ok ? ` (got ${k.key})` : ` (${k.error})`}`)
  }
  const id = lookupKey('sha256:' + h64)
  t.ok(id.ok && id.ref === undefined, 'an ID key has no reference')
  const named = lookupKey('nginx:1.27')
  t.ok(named.ok && named.ref?.path === 'library/nginx', 'a name key carries its reference')
  for (const bad of ['', 'Nginx', h64, 'nginx:', 'a//b']) {
    const k = lookupKey(bad)
    t.ok(!k.ok && k.error.startsWith('invalid reference'), `${JSON.stringify(bad)} is refused`)
  }
})

t.test('runtimeImageKeys', async (t) => {
  const pulled: RuntimeImage = {
    id: 'sha256:' + h64,
    repoTags: ['docker.io/library/nginx:1.27', 'docker.io/library/nginx:latest'],
    repoDigests: ['docker.io/library/nginx@sha256:' + redis],
    size: 72_000_000,
    pinned: false,
  }
  t.same(runtimeImageKeys(pulled), [
    'docker.io/library/nginx:1.27',
    'docker.io/library/nginx:latest',
    'docker.io/library/nginx@sha256:' + redis,
    'sha256:' + h64,
  ])

  // `ctr -n k8s.io images import app.tar`: tags, no digests.
  const imported: RuntimeImage = {
    id: 'sha256:' + redis,
    repoTags: ['registry.local:5000/team/app:dev'],
    repoDigests: [],
    size: 1000,
    pinned: false,
  }
  t.same(runtimeImageKeys(imported), ['registry.local:5000/team/app:dev', 'sha256:' + redis])

  // Liberal: familiar names (cri-dockerd) are normalised, junk is skipped, duplicates removed,
  // a bare 64-hex ID (CRI-O) gets its algorithm.
  const odd: RuntimeImage = {
    id: h64,
    repoTags: ['nginx:1.27', 'docker.io/library/nginx:1.27', '<none>:<none>', 'Bad Name', 'localhost/app'],
    repoDigests: ['<none>@<none>', 'nginx@sha256:' + redis, 'docker.io/library/nginx@sha256:' + redis],
    size: 1,
    pinned: true,
  }
  t.same(runtimeImageKeys(odd), [
    'docker.io/library/nginx:1.27',
    'localhost/app:latest',
    'docker.io/library/nginx@sha256:' + redis,
    'sha256:' + h64,
  ])

  t.same(runtimeImageKeys({ id: 'not-an-id', repoTags: [], repoDigests: [], size: 0, pinned: false }), [])

  // What the kubelet looks up is among what the runtime lists.
  const keys = new Set(runtimeImageKeys(pulled))
  for (const image of [
    'nginx:1.27',
    'nginx',
    'docker.io/nginx:1.27',
    'nginx@sha256:' + redis,
    'nginx:1.27@sha256:' + redis,
    'sha256:' + h64,
  ]) {
    const k = lookupKey(image)
    t.ok(k.ok && keys.has(k.key), `${image} is present`)
  }
  for (const image of ['nginx:1.26', 'ghcr.io/library/nginx:1.27', 'nginx@sha256:' + h64, 'sha256:' + redis]) {
    const k = lookupKey(image)
    t.ok(k.ok && !keys.has(k.key), `${image} is absent`)
  }
})

t.test('nodeStatusImageKey', async (t) => {
  t.equal(nodeStatusImageKey('docker.io/library/nginx@sha256:' + h64), 'docker.io/library/nginx@sha256:' + h64)
  t.equal(nodeStatusImageKey('docker.io/library/nginx:1.27'), 'docker.io/library/nginx:1.27')
  t.equal(nodeStatusImageKey('registry.k8s.io/pause:3.9'), 'registry.k8s.io/pause:3.9')
  t.equal(nodeStatusImageKey('nginx:1.27'), 'docker.io/library/nginx:1.27')
  t.equal(nodeStatusImageKey('sha256:' + h64), 'sha256:' + h64)
  t.equal(nodeStatusImageKey(h64), 'sha256:' + h64)
  t.equal(nodeStatusImageKey('<none>@<none>'), undefined)
  t.equal(nodeStatusImageKey('<none>:<none>'), undefined)
  t.equal(nodeStatusImageKey(''), undefined)
})

t.test('familiarName of hand-built references', async (t) => {
  const ref = (domain: string, path: string, tag?: string, digest?: string): ImageReference => ({
    domain,
    path,
    tag,
    digest,
  })
  t.equal(familiarName(ref('docker.io', 'library/nginx', '1.27')), 'nginx:1.27')
  t.equal(familiarName(ref('docker.io', 'library/foo/bar')), 'library/foo/bar')
  t.equal(familiarName(ref('docker.io', 'me/app', '1')), 'me/app:1')
  t.equal(familiarName(ref('ghcr.io', 'o/a', undefined, 'sha256:' + h64)), 'ghcr.io/o/a@sha256:' + h64)
  t.equal(familiarName(ref('localhost:5000', 'app', 'dev')), 'localhost:5000/app:dev')
  t.equal(familiarName(ref('quay.io', 'library/x', 'v')), 'quay.io/library/x:v')
  t.equal(dockerRef(ref('docker.io', 'library/nginx')), 'docker.io/library/nginx:latest')
  t.equal(dockerRef(ref('docker.io', 'library/nginx', '1', 'sha256:' + h64)), 'docker.io/library/nginx@sha256:' + h64)
})

t.test('key helpers', async (t) => {
  const repo: Array<[string, string | undefined]> = [
    ['docker.io/library/nginx:1.27', 'docker.io/library/nginx'],
    ['docker.io/library/nginx@sha256:' + h64, 'docker.io/library/nginx'],
    ['localhost:5000/app:dev', 'localhost:5000/app'],
    ['[::1]:5000/app:1', '[::1]:5000/app'],
    ['[::1]:5000/app@sha256:' + h64, '[::1]:5000/app'],
    ['localhost:5000/app', 'localhost:5000/app'],
    ['sha256:' + h64, undefined],
  ]
  for (const [key, want] of repo) t.equal(repositoryOfKey(key), want, `repositoryOfKey ${key}`)

  const short: Array<[string, string]> = [
    ['docker.io/library/nginx:1.27', 'nginx:1.27'],
    ['docker.io/library/nginx@sha256:' + h64, 'nginx@sha256:' + h64],
    ['docker.io/me/app:1', 'me/app:1'],
    ['docker.io/library/foo/bar:1', 'library/foo/bar:1'],
    ['ghcr.io/o/a:1', 'ghcr.io/o/a:1'],
    ['localhost:5000/app:dev', 'localhost:5000/app:dev'],
    ['sha256:' + h64, 'sha256:' + h64.slice(0, 12)],
  ]
  for (const [key, want] of short) t.equal(shortRef(key), want, `shortRef ${key}`)

  t.ok(isIdKey('sha256:' + h64))
  t.notOk(isIdKey('docker.io/library/nginx:1.27'))

  // Every key lookupKey makes agrees with the helpers: shortRef is the familiar form of the docker ref.
  for (const [input, , , , , ref] of valid) {
    const k = lookupKey(input)
    if (!k.ok || k.ref === undefined) continue
    t.equal(k.key, ref)
    t.equal(repositoryOfKey(k.key), repositoryOf(k.ref), `repositoryOfKey(lookupKey(${input}))`)
    const asRef = k.ref.digest !== undefined ? { ...k.ref, tag: undefined } : { ...k.ref, tag: k.ref.tag ?? 'latest' }
    t.equal(shortRef(k.key), familiarName(asRef), `shortRef(lookupKey(${input}))`)
  }
})

t.test('property: references built from the grammar parse back to their parts', async (t) => {
  const fc = (await import('fast-check')).default
  const alnum = fc.stringMatching(/^[a-z0-9]{1,6}$/)
  const sep = fc.constantFrom('.', '_', '__', '-', '--', '---')
  const component = fc
    .tuple(alnum, fc.array(fc.tuple(sep, alnum), { maxLength: 3 }))
    .map(([head, rest]) => head + rest.map(([s, a]) => s + a).join(''))
  const path = fc.array(component, { minLength: 1, maxLength: 4 }).map((c) => c.join('/'))
  const domain = fc.constantFrom(
    'ghcr.io',
    'localhost',
    'localhost:5000',
    'registry.example.com:443',
    '10.0.0.1:5000',
    '[::1]:5000',
    'Example.COM',
  )
  const tag = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}$/)
  const digest = fc.stringMatching(/^[a-f0-9]{64}$/).map((h) => 'sha256:' + h)
  fc.assert(
    fc.property(domain, path, fc.option(tag), fc.option(digest), (d, p, tg, dg) => {
      const input = d + '/' + p + (tg === null ? '' : ':' + tg) + (dg === null ? '' : '@' + dg)
      const r = parseReference(input)
      if (!r.ok) throw new Error(r.error)
      if (
        r.ref.domain !== d ||
        r.ref.path !== p ||
        r.ref.tag !== (tg ?? undefined) ||
        r.ref.digest !== (dg ?? undefined)
      ) {
        throw new Error(`${input} -> ${JSON.stringify(r.ref)}`)
      }
      const again = parseReference(familiarName(r.ref))
      return again.ok && dockerRef(again.ref) === dockerRef(r.ref)
    }),
    { numRuns: 2000 },
  )
  // Without a registry: docker.io, and library/ only for one component. A first component with
  // a "." is taken as a host (or, when it is not a valid host, the path has no domain at all).
  fc.assert(
    fc.property(path, (p) => {
      const r = parseReference(p)
      if (!r.ok) return p.length === 64 && /^[a-f0-9]+$/.test(p)
      const slash = p.indexOf('/')
      const first = p.slice(0, slash)
      if (slash > 0 && (first.includes('.') || first === 'localhost')) {
        return (
          (r.ref.domain === first && r.ref.path === p.slice(slash + 1)) || (r.ref.domain === '' && r.ref.path === p)
        )
      }
      return r.ref.domain === 'docker.io' && r.ref.path === (slash > 0 ? p : 'library/' + p)
    }),
    { numRuns: 2000 },
  )
  t.pass('properties hold')
})
