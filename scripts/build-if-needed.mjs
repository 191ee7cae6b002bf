// `npm start`: build src/ into dist/ only when dist/server.js is missing or dist/ is older than a
// source file, so a deployed build starts at once and a fresh checkout still works. dist/ as a whole,
// not dist/server.js: tsc rewrites only the files that changed, and the page's files are copied.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

function newestMtime (dir) {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs)
  }
  return newest
}

const output = 'dist/server.js'
if (!existsSync(output) || newestMtime('dist') < newestMtime('src')) {
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' })
}
