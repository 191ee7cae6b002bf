import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { baseEnv, httpRequest } from './helper.js'
import { freePort } from './support/private-mariadb.js'

const root = new URL('..', import.meta.url).pathname

t.test('the built server serves the page: the build copies src/web next to the compiled code', async (t) => {
  // Inside the project (git-ignored), so the build resolves node_modules; never dist/ itself.
  const outDir = join(root, '.tap', `build-${randomBytes(4).toString('hex')}`)
  t.teardown(() => rmSync(outDir, { recursive: true, force: true }))
  execFileSync(process.execPath, ['scripts/build.mjs', outDir], { cwd: root, stdio: 'inherit' })

  const port = await freePort()
  const server = spawn(process.execPath, [join(outDir, 'server.js')], {
    cwd: outDir,
    env: { PATH: process.env.PATH, ...baseEnv, LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: String(port) }
  })
  t.teardown(() => { server.kill() })
  await new Promise<void>((resolve, reject) => {
    let output = ''
    server.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Server listening')) resolve()
    })
    server.once('exit', (code) => reject(new Error(`the built server exited with ${code}`)))
  })

  for (const [url, file] of [['/', 'index.html'], ['/assets/app.js', 'app.js'], ['/assets/style.css', 'style.css']]) {
    const res = await httpRequest(`http://127.0.0.1:${port}${url}`)
    t.equal(res.status, 200, url)
    const source = readFileSync(join(root, 'src/web', file as string), 'utf8')
    t.equal(res.body, source.replace('<body>', '<body data-sso="off" data-password-login="on">'), `${url} is src/web/${file}`)
  }
})
