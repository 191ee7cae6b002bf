// `npm run users -- add NAME [--file PATH]`: adds a user to the htpasswd file, or changes their
// password. The password comes from a prompt on a terminal, or from the first line of stdin.
// The file defaults to AUTH_USERS_FILE; a running server picks the change up without a restart.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { hash } from '@node-rs/bcrypt'
import { BCRYPT_MAX_BYTES, formatHtpasswd, parseHtpasswd, USER_NAME } from '../auth/htpasswd.js'
import { loadConfig } from '../config/config.js'

const BCRYPT_COST = 12
const MIN_PASSWORD_LENGTH = 8

const USAGE = 'usage: npm run users -- add NAME [--file PATH]   (password from the prompt or stdin)'

async function readPassword (): Promise<string> {
  if (!process.stdin.isTTY) {
    let text = ''
    for await (const chunk of process.stdin) text += String(chunk)
    return text.split(/\r?\n/)[0] ?? ''
  }
  // A prompt that does not echo what is typed.
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true })
  const ask = (question: string) => new Promise<string>((resolve) => {
    const write = rl as unknown as { _writeToOutput: (text: string) => void }
    const original = write._writeToOutput.bind(rl)
    write._writeToOutput = (text: string) => { original(text.startsWith(question) ? question : '') }
    rl.question(question, (answer) => {
      write._writeToOutput = original
      process.stderr.write('\n')
      resolve(answer)
    })
  })
  try {
    const first = await ask('Password: ')
    const second = await ask('Again: ')
    if (first !== second) throw new Error('the two passwords differ')
    return first
  } finally {
    rl.close()
  }
}

async function main (): Promise<void> {
  const { positionals, values } = parseArgs({ allowPositionals: true, options: { file: { type: 'string' } } })
  const [command, name] = positionals
  if (command !== 'add' || !name || positionals.length !== 2) throw new Error(USAGE)
  if (!USER_NAME.test(name)) throw new Error(`NAME must match ${USER_NAME.source}`)
  const path = values.file ?? loadConfig().config.AUTH_USERS_FILE
  if (!path) throw new Error('set AUTH_USERS_FILE or pass --file PATH')

  const password = await readPassword()
  if (password.length < MIN_PASSWORD_LENGTH) throw new Error(`the password must be at least ${MIN_PASSWORD_LENGTH} characters`)
  // Refused rather than cut: the login refuses longer passwords too, so the user could never log in.
  const bytes = Buffer.byteLength(password, 'utf8')
  if (bytes > BCRYPT_MAX_BYTES) throw new Error(`the password must be at most ${BCRYPT_MAX_BYTES} bytes in UTF-8 (this one is ${bytes}): bcrypt ignores the rest`)

  const users = existsSync(path) ? parseHtpasswd(readFileSync(path, 'utf8'), path) : new Map<string, string>()
  const existed = users.has(name)
  users.set(name, await hash(password, BCRYPT_COST))
  // Write a sibling file and rename it over the old one, so a server never reads half a file.
  const temporary = `${path}.${process.pid}.tmp`
  writeFileSync(temporary, formatHtpasswd(users), { mode: 0o600 })
  renameSync(temporary, path)
  process.stdout.write(`${existed ? 'changed the password of' : 'added'} ${name} in ${path}\n`)
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
})
