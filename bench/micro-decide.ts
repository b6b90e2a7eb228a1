import { loadBodies } from './bodies.js'
import { decideBench } from './micro.js'

// decide() alone at 1,000 and 5,000 nodes, without the rest of `npm run bench`:
// node --expose-gc --import tsx bench/micro-decide.ts [ITERATIONS]
const iterations = Number(process.argv[2] ?? 20_000)
decideBench([1_000, 5_000], loadBodies(), iterations, (line) => console.log(line))
