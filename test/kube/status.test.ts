import t from 'tap'
import { parseStatus, statusOf } from '../../src/kube/status.js'

t.test('a Status body: its reason and message', (t) => {
  const body = JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    status: 'Failure',
    message: 'nodeimagesets.neverpull.dev "x" is forbidden',
    reason: 'Forbidden',
    code: 403,
  })
  t.strictSame(parseStatus(403, body), {
    code: 403,
    reason: 'Forbidden',
    message: 'nodeimagesets.neverpull.dev "x" is forbidden',
    text: undefined,
  })
  t.end()
})

t.test('anything else: the HTTP status text, and the start of a page that is not JSON', (t) => {
  t.strictSame(parseStatus(502, '<html>Bad Gateway</html>\n'), {
    code: 502,
    reason: 'Bad Gateway',
    message: undefined,
    text: '<html>Bad Gateway</html>',
  })
  t.strictSame(parseStatus(503, ''), { code: 503, reason: 'Service Unavailable', message: undefined, text: undefined })
  t.strictSame(parseStatus(500, '{}'), {
    code: 500,
    reason: 'Internal Server Error',
    message: undefined,
    text: undefined,
  })
  t.equal(parseStatus(500, 'x'.repeat(1000)).text?.length, 300, 'a page is cut')
  t.end()
})

t.test("a watch ERROR event's object", (t) => {
  t.strictSame(statusOf({ code: 410, reason: 'Expired', message: 'too old resource version' }, 0), {
    code: 410,
    reason: 'Expired',
    message: 'too old resource version',
    text: undefined,
  })
  t.strictSame(statusOf(null, 0), { code: 0, reason: 'Unknown', message: undefined, text: undefined })
  t.end()
})
