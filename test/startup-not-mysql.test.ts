import { createServer as createHttpServer } from 'node:http'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { baseEnv, httpRequest, type Env } from './helper.js'
import { freePort } from './support/private-mariadb.js'
import { runProcess, serverEntry, startServer } from './support/server-process.js'

// SESSION_HOST:SESSION_PORT where another program listens: one that speaks first and is not MySQL,
// or a web server (asked over HTTP once silent), stops start-up; one that says nothing even then
// (a TCP proxy with no backend yet) is named in the warning, and the server starts and answers 503
// meanwhile.

const SSH_BANNER = 'SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n'

async function listening (t: Test, server: Server | ReturnType<typeof createHttpServer>): Promise<number> {
  const sockets = new Set<Socket>()
  server.on('connection', (socket: Socket) => sockets.add(socket))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    // A program that never speaks never ends the connections it was given either.
    for (const socket of sockets) socket.destroy()
    server.close(() => resolve())
  }))
  return (server.address() as AddressInfo).port
}

function databaseAt (port: number): Env {
  return { ...baseEnv, LOG_LEVEL: 'info', HOST: '127.0.0.1', SESSION_HOST: '127.0.0.1', SESSION_PORT: String(port), SESSION_USER: 'app', SESSION_PASSWORD: 'app-password-1234', SESSION_DATABASE: 'sessions' }
}

t.test('an SSH server on SESSION_PORT: exit 1, one line saying what answered', async (t) => {
  const ssh = createServer((socket) => {
    socket.on('error', () => {})
    socket.write(SSH_BANNER)
  })
  const port = await listening(t, ssh)
  const result = await runProcess([serverEntry], { ...databaseAt(port), PORT: String(await freePort()) }, (stdout, child) => {
    if (stdout.includes('Server listening')) child.kill('SIGKILL')
  })
  t.equal(result.code, 1)
  t.equal(result.stderr, `127.0.0.1:${port} answered but is not a MySQL/MariaDB server (it sent "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\\r\\n"): SESSION_PORT must be the database's port\n`)
  t.notMatch(result.stdout, /Server listening/)
  t.notOk(result.stdout.includes('app-password-1234') || result.stderr.includes('app-password-1234'), 'no password in any output')
})

t.test('an HTTP server on SESSION_PORT (silent until asked): exit 1, one line saying a web server answered', async (t) => {
  const web = createHttpServer((_request, response) => response.end('hello'))
  const port = await listening(t, web)
  const result = await runProcess([serverEntry], { ...databaseAt(port), PORT: String(await freePort()) }, (stdout, child) => {
    if (stdout.includes('Server listening')) child.kill('SIGKILL')
  })
  t.equal(result.code, 1)
  t.match(result.stderr, new RegExp(`^127\\.0\\.0\\.1:${port} is a web server, not a MySQL/MariaDB server \\(asked over HTTP, it answered "HTTP/1\\.1 200 OK\\\\r\\\\n[^\\n]*\\): SESSION_PORT must be the database's port\\n$`))
  t.notMatch(result.stdout, /Server listening/)
})

t.test('a program on SESSION_PORT that says nothing even when asked: the warning says so; the server starts and answers 503', async (t) => {
  const mute = createServer((socket) => { socket.on('error', () => {}) })
  const dbPort = await listening(t, mute)
  const port = await freePort()
  const server = await startServer({ ...databaseAt(dbPort), PORT: String(port) })
  t.equal((await httpRequest(`http://127.0.0.1:${port}/session`)).status, 503)
  t.equal((await httpRequest(`http://127.0.0.1:${port}/health/ready`)).status, 503)
  server.child.kill('SIGTERM')
  const exit = await server.exited
  t.equal(exit.code, 0)
  t.equal(exit.stderr, '')
  const messages = exit.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { level: number, msg: string })
    .filter((entry) => entry.level === 40).map((entry) => entry.msg)
  t.ok(messages.includes(`the session database does not answer (127.0.0.1:${dbPort} accepted the connection but sent no MySQL greeting within 1.5 s: is SESSION_PORT the database's port?); session routes answer 503 until it does`), messages.join('\n'))
})
