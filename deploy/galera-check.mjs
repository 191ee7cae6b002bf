#!/usr/bin/env node
// Galera "clustercheck" for HAProxy: a tiny HTTP server, one per MariaDB node, that answers
// 200 when its node can take traffic (wsrep_local_state=4 Synced, wsrep_cluster_status=Primary,
// wsrep_ready=ON) and 503 otherwise (joining, donor, desynced, non-primary, down).
// `option mysql-check` is not enough: a desynced or non-primary node still completes the handshake.
//
// No dependencies besides Node 18+ and the `mariadb` client (apt-get install -y mariadb-client),
// so it can be copied alone to each database machine:
//   node galera-check.mjs --port 9200 --mysql-port 3306 [--mysql-host 127.0.0.1] [--mysql-user clustercheck]
// with the password, if any, in the MYSQL_PWD environment variable. The account needs no
// privilege (SHOW GLOBAL STATUS): CREATE USER clustercheck@localhost IDENTIFIED BY '...'
// Run it under systemd next to mariadbd and point HAProxy at it with `check port 9200`
// (deploy/haproxy-galera.cfg). Keep it on the private network: it tells anyone the node's state.
import { execFile } from 'node:child_process'
import { createServer } from 'node:http'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '9200' },
    host: { type: 'string', default: '127.0.0.1' },
    'mysql-host': { type: 'string', default: '127.0.0.1' },
    'mysql-port': { type: 'string', default: '3306' },
    'mysql-user': { type: 'string', default: 'root' }
  }
})

const QUERY = "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state', 'wsrep_cluster_status', 'wsrep_ready')"

/** The three wsrep variables, by the mariadb CLI (batch mode: "name<TAB>value" lines). */
function readStatus () {
  return new Promise((resolve, reject) => {
    execFile('mariadb', [
      '--no-defaults', '--protocol=tcp', `--host=${values['mysql-host']}`, `--port=${values['mysql-port']}`,
      `--user=${values['mysql-user']}`, '--connect-timeout=2', '--batch', '--skip-column-names', `--execute=${QUERY}`
    ], { timeout: 3000 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(stderr.trim() || error.message))
      resolve(Object.fromEntries(stdout.trim().split('\n').map((line) => line.split('\t'))))
    })
  })
}

/** One query at a time however many HAProxies ask: concurrent checks share its answer. */
let pending
function check () {
  pending ??= readStatus().then((status) => {
    const synced = status.wsrep_local_state === '4' && status.wsrep_cluster_status === 'Primary' && status.wsrep_ready === 'ON'
    const text = `state=${status.wsrep_local_state} cluster=${status.wsrep_cluster_status} ready=${status.wsrep_ready}`
    return { ok: synced, text }
  }, (error) => ({ ok: false, text: `no answer: ${error.message}` })).finally(() => { pending = undefined })
  return pending
}

createServer(async (request, response) => {
  const { ok, text } = await check()
  response.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain', connection: 'close' })
  response.end(`${ok ? 'Galera node is Synced' : 'Galera node is not Synced'}: ${text}\n`)
}).listen(Number(values.port), values.host, () => {
  process.stdout.write(`galera-check on ${values.host}:${values.port} for MariaDB ${values['mysql-host']}:${values['mysql-port']}\n`)
})
