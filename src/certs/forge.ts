import { createRequire } from 'node:module'
import type * as Forge from 'node-forge'

// node-forge is CommonJS and its types declare no default export, which `import forge from`
// needs under verbatimModuleSyntax without esModuleInterop; require() gives the same object.
export const forge = createRequire(import.meta.url)('node-forge') as typeof Forge
export type { Forge }
