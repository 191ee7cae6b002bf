import { Agent } from 'node:http'
import type { HttpResponse } from '../helper.js'

/** One request of a sustained run: when it started (ms since the run began), how long it took, what came back. */
export interface Answer {
  at: number
  ms: number
  /** 0 when no HTTP answer came at all (connection refused or reset: the server is gone). */
  status: number
  retryAfter?: string
  setsCookie: boolean
}

/**
 * Keeps `workers` requests in flight over keep-alive sockets until `running()` turns false, each
 * one made by `send`, and records every answer.
 */
export async function sustainTraffic (workers: number, running: () => boolean, send: (agent: Agent) => Promise<HttpResponse>): Promise<Answer[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: workers })
  const answers: Answer[] = []
  const started = Date.now()
  const worker = async () => {
    while (running()) {
      const at = Date.now()
      try {
        const res = await send(agent)
        answers.push({
          at: at - started,
          ms: Date.now() - at,
          status: res.status,
          retryAfter: res.headers['retry-after'],
          setsCookie: res.headers['set-cookie'] !== undefined
        })
      } catch {
        answers.push({ at: at - started, ms: Date.now() - at, status: 0, setsCookie: false })
      }
    }
  }
  await Promise.all(Array.from({ length: workers }, worker))
  agent.destroy()
  return answers
}
