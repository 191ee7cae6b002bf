// `npm test`: finds the database the suite runs against, then runs tap with any extra arguments.
// Order: TEST_DATABASE_URL; else 127.0.0.1:3306 as root without a password; else a private
// throwaway MariaDB when mariadbd is installed; else a message that says how to get one.
import { spawn } from 'node:child_process'
import { createConnection } from 'mysql2/promise'
import { MARIADBD, PrivateMariaDb } from '../test/support/private-mariadb.js'

const LOCAL_URL = 'mysql://root@127.0.0.1:3306'

async function answers (url: string): Promise<boolean> {
  const { hostname, port, username, password } = new URL(url)
  try {
    const connection = await createConnection({
      host: hostname, port: Number(port || 3306), user: decodeURIComponent(username), password: decodeURIComponent(password), connectTimeout: 2000
    })
    await connection.end()
    return true
  } catch {
    return false
  }
}

async function main (): Promise<number> {
  let url = process.env.TEST_DATABASE_URL
  let privateServer: PrivateMariaDb | undefined
  if (url) {
    if (!(await answers(url))) {
      process.stderr.write('TEST_DATABASE_URL is set but nothing answers there; fix it or unset it to use 127.0.0.1:3306\n')
      return 1
    }
  } else if (await answers(LOCAL_URL)) {
    url = LOCAL_URL
  } else if (MARIADBD) {
    process.stderr.write('No database on 127.0.0.1:3306: starting a private MariaDB for this run\n')
    privateServer = await PrivateMariaDb.create()
    url = privateServer.url
  } else {
    process.stderr.write([
      'The tests need MySQL or MariaDB, and none was found.',
      'Either set TEST_DATABASE_URL=mysql://user:pass@host:port (a user that may create and drop databases),',
      'or run MariaDB on 127.0.0.1:3306 with a password-less root login,',
      'or install it (apt-get install -y mariadb-server) so the suite can start a private one.'
    ].join('\n') + '\n')
    return 1
  }

  try {
    const tap = spawn('npx', ['tap', ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, TEST_DATABASE_URL: url }
    })
    return await new Promise<number>((resolve) => tap.once('exit', (code) => resolve(code ?? 1)))
  } finally {
    await privateServer?.destroy()
  }
}

process.exitCode = await main()
