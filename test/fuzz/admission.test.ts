import t from 'tap'
import { runProperties } from './run-properties.js'

// checkPodReview over arbitrary and mutated AdmissionReviews; see properties.ts.
t.test('admission properties', (t) => runProperties(t, (name) => name.startsWith('checkPodReview')))
