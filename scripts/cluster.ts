// npm run cluster: three Galera nodes, three app instances on them, HAProxy in front, all on
// 127.0.0.1 in temporary directories (configured from deploy/); Ctrl-C stops and removes it all.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { MARIADBD } from '../test/support/private-mariadb.js'
import { GALERA, findExecutable } from './cluster/galera.js'
import { startClusterStack, type ClusterStack } from './cluster/stack.js'

// What the cluster needs from Debian, and how each is recognised.
const NEEDS: Array<{ pkg: string, present: () => boolean }> = [
  { pkg: 'mariadb-server', present: () => MARIADBD !== undefined },
  { pkg: 'galera-4', present: () => existsSync(GALERA) },
  { pkg: 'rsync', present: () => findExecutable('rsync') !== undefined },
  { pkg: 'haproxy', present: () => findExecutable('haproxy') !== undefined }
]

/** Installs what is missing when it can (root with apt-get), else says exactly what to run. */
function ensurePackages (): void {
  const missing = NEEDS.filter((need) => !need.present()).map((need) => need.pkg)
  if (missing.length === 0) return
  const command = `apt-get install -y ${missing.join(' ')}`
  if (process.getuid?.() !== 0 || findExecutable('apt-get') === undefined) {
    throw new Error(`npm run cluster needs ${missing.join(', ')}: install with \`sudo ${command}\` (Debian/Ubuntu)`)
  }
  console.log(`installing ${missing.join(', ')} (${command})`)
  execFileSync('sh', ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive ${command}`], { stdio: 'inherit' })
}

/** PORT, else 8080 when it is free, else any free port: the URL is printed either way. */
async function proxyPort (): Promise<number | undefined> {
  if (process.env.PORT) return Number(process.env.PORT)
  return await new Promise((resolve) => {
    const probe = createServer()
    probe.once('error', () => resolve(undefined))
    probe.listen(8080, '127.0.0.1', () => probe.close(() => resolve(8080)))
  })
}

async function main (): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('npm run cluster starts the Galera nodes as the mysql user, so it runs as root (sudo npm run cluster)')
  ensurePackages()
  const running: { stack?: ClusterStack } = {}
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    console.log('\nstopping the cluster')
    await running.stack?.stop()
    process.exit(0)
  }
  // Registered before anything starts, so the launchers leave Ctrl-C to this handler.
  process.on('SIGINT', () => { stop().catch(() => process.exit(1)) })
  process.on('SIGTERM', () => { stop().catch(() => process.exit(1)) })
  const stack = running.stack = await startClusterStack({ port: await proxyPort(), log: (line) => console.log(line) })
  const nodes = stack.cluster.nodes.map((node) => `${node.name} 127.0.0.1:${node.sqlPort}`).join(', ')
  console.log(`
Galera nodes:   ${nodes}
app instances:  ${stack.instances.map((instance) => instance.url).join(', ')} (instance i uses node i first)
their logs:     ${stack.instances.map((instance) => instance.logFile).join(', ')}
log in as:      ${stack.accounts.names[0]} / ${stack.accounts.password}

open ${stack.url}
(HAProxy, round robin over the instances; Ctrl-C stops everything and removes its files)`)
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error)
  process.exit(1)
})
