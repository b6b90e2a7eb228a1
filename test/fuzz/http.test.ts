import t from 'tap'
import { runProperties } from './run-properties.js'

// POST /validate over JSON, raw bytes and invalid UTF-8; see properties.ts.
t.test('HTTP properties', (t) => runProperties(t, (name) => name.startsWith('POST /validate')))
