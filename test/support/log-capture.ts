import { loggerOptions } from '../../src/logger.js'

export interface LogEntry {
  level: number
  msg?: string
  [key: string]: unknown
}

/**
 * The server's own pino options, redaction included, writing to memory instead of stdout. The app
 * sets its level from LOG_LEVEL once the configuration is read, so give the app that variable.
 */
export function captureLog () {
  const chunks: string[] = []
  return {
    logger: { ...loggerOptions(), stream: { write: (chunk: string) => { chunks.push(chunk) } } },
    /** Everything written so far, as written. */
    text: () => chunks.join(''),
    /** Every line written after the first `from` lines, parsed. */
    entries: (from = 0): LogEntry[] => chunks.join('').split('\n').filter(Boolean).slice(from).map((line) => JSON.parse(line) as LogEntry)
  }
}

/** pino's number for the warn level: entries at or above it are warnings or errors. */
export const WARN = 40
