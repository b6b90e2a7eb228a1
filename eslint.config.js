// Lint: typescript-eslint's type-aware rules, and the layering of src/ enforced as import rules.
import js from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

// Who may import whom, lowest first. A folder may import only the folders listed for it; the
// entry point src/cli.ts may import every folder. Change the layering here, nowhere else.
// Everything a review's decision is made of: what the entry points build on.
const DECIDING = ['api', 'util', 'kube', 'image', 'inventory', 'workload', 'placement', 'decision', 'admission']

const LAYERS = {
  api: [],
  util: [],
  kube: ['api', 'util'],
  image: ['api', 'util'],
  inventory: ['api', 'util', 'kube', 'image'],
  workload: ['api', 'util', 'image'],
  placement: ['api', 'util', 'inventory'],
  decision: ['api', 'util', 'image', 'inventory', 'workload', 'placement'],
  admission: ['api', 'util', 'image', 'inventory', 'workload', 'placement', 'decision'],
  config: ['api', 'util'],
  certs: ['api', 'util', 'kube'],
  audit: ['api', 'util', 'kube', 'image', 'inventory', 'workload', 'placement', 'decision', 'admission'],
  agent: ['api', 'util', 'kube'],
  server: [...DECIDING, 'config', 'certs', 'audit'],
  inspect: [...DECIDING, 'config', 'certs'],
  // The program (src/cli/main.ts): every command; src/cli.ts, the bin, only wires the process in.
  cli: [...DECIDING, 'config', 'certs', 'audit', 'agent', 'server', 'inspect'],
}
export { LAYERS }

const layerRules = Object.entries(LAYERS).map(([folder, allowed]) => {
  const forbidden = Object.keys(LAYERS).filter((f) => f !== folder && !allowed.includes(f))
  return {
    files: [`src/${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [...forbidden.map((f) => `../${f}/*`), '../*.js', '../../*'],
              message: `src/${folder} may import only ${allowed.length ? allowed.join(', ') : 'nothing of src/'} (layers in eslint.config.js)`,
            },
          ],
        },
      ],
    },
  }
})

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', '.tap/', 'node_modules/', 'bench/results/', 'bench/.child/', 'soak/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
    },
  },
  ...layerRules,
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'fuzz/**/*.ts', 'soak/**/*.ts'],
    rules: {
      // tap's t.test returns a promise that tap itself awaits.
      '@typescript-eslint/no-floating-promises': 'off',
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // tap ends a test when the promise its async function returns resolves, so
      // `async (t) => { ... }` without an await is tap's idiom, not a forgotten await.
      '@typescript-eslint/require-await': 'off',
    },
  },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
)
