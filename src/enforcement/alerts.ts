import { LRUCache } from 'lru-cache'
import type { EventSink } from '../events.js'
import type { Log } from '../log.js'
import type { CurrentPeriod } from './periods.js'
import type { UsageStore } from './store.js'

/** How long the claim of an alert for a lever that never resets (or whose reset is unknown) lasts. */
const NO_PERIOD_TTL_MS = 31 * 24 * 3_600_000

export interface ThresholdAlertsConfig {
  /** Fractions of the limit, in (0, 1], ascending. */
  thresholds: readonly number[]
  /** Most customer × lever pairs whose last crossing is remembered (the customer bound). */
  max: number
  store: UsageStore
  period: (customerId: string, lever: string) => Promise<CurrentPeriod>
  clock: { now(): number }
  emit: EventSink
  log: Log
}

/**
 * Threshold alerts: one `threshold` event per customer × lever × threshold × period. On the
 * request path only a comparison runs (the highest threshold this process saw crossed, per
 * customer × lever); a new crossing is confirmed off the path: the period is read, the alert is
 * claimed (`SET NX` with a key that expires with the period on a shared store, a bounded set
 * here otherwise) and the claimant alone emits.
 */
export class ThresholdAlerts {
  readonly #config: ThresholdAlertsConfig
  /** customer × lever → index of the highest threshold seen crossed (a hint, not the dedupe). */
  readonly #seen: LRUCache<string, number>
  /** Claimed alerts (customer × lever × threshold × period), when no shared store claims them. */
  readonly #claimed: LRUCache<string, true>

  constructor(config: ThresholdAlertsConfig) {
    this.#config = config
    this.#seen = new LRUCache({ max: config.max })
    this.#claimed = new LRUCache({ max: config.max * config.thresholds.length })
  }

  /** After an admission: `remaining` of `limit` is left once its units count (reserved and committed). */
  observe(customerId: string, lever: string, remaining: number, limit: number): void {
    const { thresholds } = this.#config
    const used = limit - remaining
    const fraction = used / limit
    let reached = -1
    while (reached + 1 < thresholds.length && thresholds[reached + 1]! <= fraction) reached++
    const key = `${customerId}\u0000${lever}`
    const seen = this.#seen.get(key) ?? -1
    if (reached === seen) return
    // Usage fell (a new period, a rolling window moving on): lower thresholds can fire again once
    // the period changed; the claim, keyed by period, keeps them once per period.
    this.#seen.set(key, reached)
    if (reached < seen) return
    this.#confirm(customerId, lever, seen + 1, reached, used, limit).catch((error: unknown) => {
      const message = 'a threshold alert could not be confirmed; it is tried again on the next crossing'
      this.#config.log.throttled('warn', 'alert', message, {
        error: error instanceof Error ? error.message : String(error),
      })
      if (this.#seen.get(key) === reached) this.#seen.set(key, seen)
    })
  }

  async #confirm(customerId: string, lever: string, from: number, to: number, used: number, limit: number) {
    const { thresholds, clock } = this.#config
    const period = await this.#config.period(customerId, lever)
    const ttlMs = period.endsAt === undefined ? NO_PERIOD_TTL_MS : Math.max(1, period.endsAt - clock.now())
    for (let i = from; i <= to; i++) {
      const threshold = thresholds[i]!
      const id = `${lever}\u0000${threshold}\u0000${period.id}`
      if (!(await this.#claim(customerId, id, ttlMs))) continue
      this.#config.emit({ type: 'threshold', customerId, lever, threshold, used, limit })
    }
  }

  /** Whether this process is the first (of the fleet, with a shared store) to send this alert. */
  async #claim(customerId: string, id: string, ttlMs: number): Promise<boolean> {
    if (this.#config.store.claimOnce !== undefined) return this.#config.store.claimOnce(customerId, id, ttlMs)
    const key = `${customerId}\u0000${id}`
    if (this.#claimed.has(key)) return false
    this.#claimed.set(key, true, { ttl: ttlMs })
    return true
  }
}
