import t from 'tap'
import { isDns1035Label, isDns1123Label, isDns1123Subdomain } from '../../src/util/dns-name.js'

// The cases of k8s.io/apimachinery pkg/util/validation validation_test.go, and the edges.

t.test('DNS-1123 label: namespaces', (t) => {
  for (const ok of ['a', 'ab', 'abc', 'a1', 'a-1', 'a--1--2--b', '0', '01', '1a', 'a'.repeat(63)]) {
    t.ok(isDns1123Label(ok), `${ok.length > 10 ? `${ok.length} characters` : ok}: valid`)
  }
  for (const bad of ['', 'A', 'ABC', 'aBc', 'A1', 'a-', '-a', 'a_b', 'a.b', 'a b', 'a@b', 'a'.repeat(64), 'a\n']) {
    t.notOk(isDns1123Label(bad), `${JSON.stringify(bad.length > 10 ? `${bad.length} characters` : bad)}: invalid`)
  }
  t.end()
})

t.test('DNS-1123 subdomain: Node and ServiceAccount names', (t) => {
  for (const ok of ['a', 'a.b.c', '1.a', 'a-1.b-2', 'node-1.example.com', 'a'.repeat(253), `${'a'.repeat(70)}.b`]) {
    t.ok(isDns1123Subdomain(ok), `${ok.length > 30 ? `${ok.length} characters` : ok}: valid`)
  }
  for (const bad of ['', '.', 'a.', '.a', 'a..b', 'a-.b', 'A.b', 'a_b', 'a'.repeat(254), 'a/b', 'a:b']) {
    t.notOk(isDns1123Subdomain(bad), `${JSON.stringify(bad.length > 30 ? `${bad.length} characters` : bad)}: invalid`)
  }
  t.end()
})

t.test('DNS-1035 label: Service names start with a letter', (t) => {
  for (const ok of ['a', 'ab', 'a1', 'a-1', 'neverpull-guard', 'a'.repeat(63)]) t.ok(isDns1035Label(ok), `${ok}: valid`)
  for (const bad of ['', '1', '1a', '-a', 'a-', 'A', 'a.b', 'a'.repeat(64)])
    t.notOk(isDns1035Label(bad), `${bad}: invalid`)
  t.end()
})
