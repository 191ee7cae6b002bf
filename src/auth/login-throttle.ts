/**
 * Counts login attempts per key (a username, an address) in a sliding window. An attempt takes its
 * slot before its password is checked, so attempts checked at the same time cannot all pass: the
 * check awaits bcrypt, and counting failures after it let any number through at once. In memory,
 * per process: several instances each enforce the limit, which multiplies it by their number at most.
 */
export class LoginThrottle {
  private readonly attempts = new Map<string, Window>()

  constructor (
    private readonly limit: number,
    private readonly windowMs: number,
    // Bounds memory under a flood of distinct keys: the oldest entries go first.
    private readonly maxKeys = 100000
  ) {}

  /** Seconds until `key` may try again, or 0 when it may now. */
  retryAfterSeconds (key: string, now = Date.now()): number {
    const entry = this.attempts.get(key)
    if (!entry || entry.resetAt <= now) return 0
    return entry.count >= this.limit ? Math.ceil((entry.resetAt - now) / 1000) : 0
  }

  /**
   * Counts an attempt of `key` now. Call it in the same synchronous step as `retryAfterSeconds`
   * said 0, before any await. A failed attempt keeps its slot until the window ends; `release`
   * gives it back.
   */
  reserve (key: string, now = Date.now()): Reservation {
    let entry = this.attempts.get(key)
    if (entry && entry.resetAt > now) {
      entry.count++
    } else {
      this.attempts.delete(key)
      entry = { count: 1, resetAt: now + this.windowMs }
      this.attempts.set(key, entry)
      if (this.attempts.size > this.maxKeys) {
        const oldest = this.attempts.keys().next().value
        if (oldest !== undefined) this.attempts.delete(oldest)
      }
    }
    const held = entry
    return {
      // Only the window the slot was taken in: a later one starts from its own attempts.
      release: () => { if (this.attempts.get(key) === held && held.count > 0) held.count-- }
    }
  }

  /** Forgets every attempt of `key`. */
  reset (key: string): void {
    this.attempts.delete(key)
  }
}

interface Window {
  count: number
  resetAt: number
}

export interface Reservation {
  /** Gives the slot back: the attempt no longer counts. */
  release (): void
}
