// npm run dev:sso: `npm run dev` with SSO against a local OpenID provider (scripts/sso/dev-provider.ts)
// on 127.0.0.1:OIDC_DEV_PORT (9010). Any login name and any password work there. Ctrl-C stops both.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { constants } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseEnv } from 'node:util'
import { startDevProvider } from './sso/dev-provider.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** The environment over `.env`, an empty value meaning unset: what the server itself will see. */
function setting (name: string): string | undefined {
  let dotEnv: Record<string, string | undefined> = {}
  try {
    dotEnv = parseEnv(readFileSync(join(root, '.env'), 'utf8'))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  return process.env[name] || dotEnv[name] || undefined
}

async function main (): Promise<void> {
  const publicUrl = (setting('PUBLIC_URL') ?? `http://127.0.0.1:${setting('PORT') ?? 9000}`).replace(/\/+$/, '')
  const dev = await startDevProvider({ port: Number(setting('OIDC_DEV_PORT') ?? 9010), appUrls: [publicUrl] })
  // In tests a refused logout token is the point; here it means the app missed a logout.
  dev.provider.on('backchannel.error', (_ctx, error) => console.error(`dev OpenID provider: back-channel logout failed: ${error.message}`))

  // As `npm run dev`, in a process group of its own so that stopping reaches tsx watch's server too.
  const child = spawn(join(root, 'node_modules', '.bin', 'tsx'), ['watch', 'src/server.ts'], {
    cwd: root,
    stdio: 'inherit',
    detached: true,
    env: {
      ...process.env,
      NODE_ENV: 'development',
      SESSION_COOKIE_SECURE: process.env.SESSION_COOKIE_SECURE || 'auto',
      PUBLIC_URL: publicUrl,
      OIDC_ISSUER: dev.issuer,
      OIDC_CLIENT_ID: dev.clientId,
      OIDC_CLIENT_SECRET: dev.clientSecret
    }
  })

  let signals = 0
  const stop = () => {
    // The first Ctrl-C asks the server to close; a second one does not wait.
    signals++
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signals === 1 ? 'SIGTERM' : 'SIGKILL')
    } catch {} // already gone
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)

  child.on('error', (error) => {
    console.error(`could not start the dev server: ${error.message}`)
    dev.stop().finally(() => process.exit(1))
  })
  child.on('exit', (code, signal) => {
    const status = code ?? (signal ? 128 + constants.signals[signal] : 1)
    dev.stop().finally(() => process.exit(status))
  })

  console.log(`SSO dev provider at ${dev.issuer}: open ${publicUrl}, click "Log in with SSO", and sign in at the provider with any name (e.g. demo) and any password`)
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error)
  process.exit(1)
})
