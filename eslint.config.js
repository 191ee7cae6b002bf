// `npm run lint`: neostandard (standard style for ESM and TypeScript) over src/, test/, scripts/
// and bench/. Ignored: whatever .gitignore lists (node_modules/, dist/, .tap/, coverage/).
import globals from 'globals'
import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: resolveIgnoresFromGitignore() }),
  {
    // Scripts that run in the browser: the page's and the cross-origin test frontend's.
    files: ['src/web/**/*.js', 'test/fixtures/**/*.js'],
    languageOptions: { globals: globals.browser }
  }
]
