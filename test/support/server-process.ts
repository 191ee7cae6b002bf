import { spawn, type ChildProcess } from 'node:child_process'
import type { Env } from '../helper.js'

export interface Exit { code: number | null, stdout: string, stderr: string, ms: number }

/** src/server.ts, the production entry point, run from source. */
export const serverEntry = new URL('../../src/server.ts', import.meta.url).pathname
const fixtures = new URL('../fixtures/', import.meta.url).pathname
// Absolute, so a child started in another working directory still finds it.
const tsxLoader = import.meta.resolve('tsx')

/**
 * Runs a TypeScript file in a child Node process with exactly the given variables (the test must
 * not depend on the developer's environment or .env) and resolves when it exits.
 */
export function runProcess (args: string[], env: Env, onStdout?: (text: string, child: ChildProcess) => void, cwd = fixtures): Promise<Exit> {
  const started = Date.now()
  const child = spawn(process.execPath, ['--import', tsxLoader, ...args], { env: { PATH: process.env.PATH, ...env }, cwd })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
    onStdout?.(stdout, child)
  })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started })))
}

export interface ServerProcess {
  child: ChildProcess
  /** Resolves when the process exits, however that comes about. */
  exited: Promise<Exit>
}

/** Starts src/server.ts (in `cwd`, where it reads `.env`) and resolves once it logs that it listens; rejects if it exits before. */
export function startServer (env: Env, cwd?: string): Promise<ServerProcess> {
  return new Promise((resolve, reject) => {
    let listening = false
    const exited = runProcess([serverEntry], env, (stdout, child) => {
      if (listening || !stdout.includes('Server listening')) return
      listening = true
      resolve({ child, exited })
    }, cwd)
    exited.then((exit) => { if (!listening) reject(new Error(`the server exited with ${exit.code} before listening: ${exit.stderr}`)) }, reject)
  })
}
