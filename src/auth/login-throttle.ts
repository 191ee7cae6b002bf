/**
 * Counts failed logins per key (a username, an address) in a sliding window. In memory, per
 * process: several instances each enforce the limit, which multiplies it by their number at most.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, { count: number, resetAt: number }>()

  constructor (
    private readonly limit: number,
    private readonly windowMs: number,
    // Bounds memory under a flood of distinct keys: the oldest entries go first.
    private readonly maxKeys = 100000
  ) {}

  /** Seconds until `key` may try again, or 0 when it may now. */
  retryAfterSeconds (key: string, now = Date.now()): number {
    const entry = this.failures.get(key)
    if (!entry || entry.resetAt <= now) return 0
    return entry.count >= this.limit ? Math.ceil((entry.resetAt - now) / 1000) : 0
  }

  fail (key: string, now = Date.now()): void {
    const entry = this.failures.get(key)
    if (entry && entry.resetAt > now) {
      entry.count++
      return
    }
    this.failures.delete(key)
    this.failures.set(key, { count: 1, resetAt: now + this.windowMs })
    if (this.failures.size > this.maxKeys) {
      const oldest = this.failures.keys().next().value
      if (oldest !== undefined) this.failures.delete(oldest)
    }
  }

  reset (key: string): void {
    this.failures.delete(key)
  }
}
