// express-mysql-session ships no types; this declares the part of it this project uses.
declare module 'express-mysql-session' {
  import type { Store } from 'express-session'

  interface MySQLStoreOptions {
    clearExpired?: boolean
    createDatabaseTable?: boolean
    endConnectionOnClose?: boolean
    expiration?: number
    schema?: { tableName?: string }
  }

  class MySQLStoreBase extends Store {
    constructor (options: MySQLStoreOptions, connection?: unknown)
    options: Required<MySQLStoreOptions>
    query (sql: string, params?: unknown[]): Promise<[unknown, unknown]>
    get (sid: string, callback?: (error: unknown, session?: unknown) => void): unknown
    set (sid: string, session: unknown, callback?: (error?: unknown) => void): unknown
    touch (sid: string, session: unknown, callback?: (error?: unknown) => void): unknown
    destroy (sid: string, callback?: (error?: unknown) => void): unknown
    length (callback?: (error: unknown, length?: number) => void): Promise<number>
    close (): Promise<void>
  }

  export default function mysqlStoreFactory (session: unknown): typeof MySQLStoreBase
}
