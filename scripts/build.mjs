// `npm run build`, and `npm start` through build-if-needed: compile src/ with tsc, then copy the
// page's static files (src/web), which tsc leaves out. An argument builds into another folder
// than dist/ (a test does), with its own incremental state so dist/ is never believed up to date.
import { execFileSync } from 'node:child_process'
import { cpSync } from 'node:fs'
import { join } from 'node:path'

const outDir = process.argv[2] ?? 'dist'
try {
  execFileSync(process.execPath, [
    'node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json',
    '--outDir', outDir, '--tsBuildInfoFile', join(outDir, '.tsbuildinfo')
  ], { stdio: 'inherit' })
} catch (error) {
  process.exit(error.status ?? 1)
}
cpSync('src/web', join(outDir, 'web'), { recursive: true })
