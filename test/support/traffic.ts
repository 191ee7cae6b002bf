import { Agent } from 'node:http'
import { httpRequest, type HttpResponse, type RequestOptions } from '../helper.js'

export type PathRequest = RequestOptions & { path?: string }

/**
 * Sends every request (to /session unless it names a path), `concurrency` at a time over
 * keep-alive sockets, and resolves with the answers in the order the requests were given.
 */
export async function sendAll (base: string, requests: PathRequest[], concurrency = 8): Promise<HttpResponse[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency })
  const answers: HttpResponse[] = new Array(requests.length)
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < requests.length) {
      const index = next++
      const { path = '/session', ...options } = requests[index] as PathRequest
      // After a 431 the server closes the socket, and the agent may already have handed it to the
      // next request: that one is sent again on a socket of its own (a crashed server fails both).
      answers[index] = await httpRequest(base + path, { ...options, agent }).catch(() => httpRequest(base + path, options))
    }
  }))
  agent.destroy()
  return answers
}

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
