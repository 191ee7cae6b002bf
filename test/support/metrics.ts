import { httpRequest } from '../helper.js'

export type Labels = Record<string, string>

/** One scrape of a Prometheus text page: `value(name, labels)` sums the series of that name that carry those labels. */
export class Scrape {
  private readonly series: Array<{ name: string, labels: Labels, value: number }> = []

  constructor (readonly text: string) {
    for (const line of text.split('\n')) {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
      if (!match) continue
      const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map(([, key, value]) => [key, value]))
      this.series.push({ name: match[1] as string, labels, value: Number(match[3]) })
    }
  }

  /** undefined when no such series exists (a counter never incremented, a metric not served). */
  value (name: string, labels: Labels = {}): number | undefined {
    const found = this.series.filter((series) => series.name === name && Object.entries(labels).every(([key, value]) => series.labels[key] === value))
    return found.length === 0 ? undefined : found.reduce((sum, series) => sum + series.value, 0)
  }

  /** How many times the store ran `operation` (every operation when not given). */
  storeQueries (operation?: string): number {
    return this.value('session_store_query_duration_seconds_count', operation === undefined ? {} : { operation }) ?? 0
  }
}

export async function scrape (base: string): Promise<Scrape> {
  const res = await httpRequest(`${base}/metrics`)
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`)
  return new Scrape(res.body)
}
