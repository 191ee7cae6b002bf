// `npm run build`, and `npm start` through build-if-needed: compile src/ with tsc, then copy the
// page's static files (src/web), which tsc leaves out. An argument builds into another folder
// than dist/ (a test does), with its own incremental state so dist/ is never believed up to date.
// `--clean` (npm pack's prepack) empties the folder first: no file of a deleted source is packed.
import { execFileSync } from 'node:child_process'
import { cpSync, rmSync } from 'node:fs'
import { join } from 'node:path'

const args = process.argv.slice(2)
const outDir = args.find((arg) => arg !== '--clean') ?? 'dist'
if (args.includes('--clean')) rmSync(outDir, { recursive: true, force: true })
try {
  execFileSync(process.execPath, [
    'node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json',
    '--outDir', outDir, '--tsBuildInfoFile', join(outDir, '.tsbuildinfo')
  ], { stdio: 'inherit' })
} catch (error) {
  process.exit(error.status ?? 1)
}
cpSync('src/web', join(outDir, 'web'), { recursive: true })
