import { LRUCache } from 'lru-cache'
import type { Log } from '../log.js'
import type { Reset } from '../http/headers.js'
import type { Clock } from '../types.js'
import type { PlanshipClient } from '../planship/client.js'
import type { CustomerSubscription, Lever } from '../planship/types.js'

/** How a lever's usage comes back: a rolling window, the subscription's renewal, or never (all-time, unknown). */
type Period =
  /** `reset`: the same for every customer and response, built once. */
  { kind: 'window'; seconds: number; reset: Reset } | { kind: 'subscription' } | { kind: 'none' }

/** A lever's current period for one customer (see {@link LeverPeriods.current}). */
export interface CurrentPeriod {
  id: string
  endsAt: number | undefined
  reset: Reset | undefined
}

/** How long what was learned about a lever (or a customer's renewal) is kept before it is read again. */
const RELEARN_MS = 600_000
/** After a failed read, how long before trying again. */
const RETRY_MS = 60_000
const MAX_LEVERS = 1_000
const MAX_CUSTOMERS = 10_000

export interface LeverPeriodsConfig {
  client: PlanshipClient
  clock: Clock
  log: Log
}

/**
 * What the reset of a lever is, from data read in the background and cached, never on the
 * request path: the lever's aggregation period (product data, once per lever per 10 minutes)
 * and, for levers that reset with the subscription, the customer's renewal time (read only
 * after a denial, once per customer per 10 minutes). Unknown until read, then known.
 */
export class LeverPeriods {
  readonly #config: LeverPeriodsConfig
  /** Product-level and small: a plain Map (cleared past MAX_LEVERS), cheaper than an LRU on every response. */
  readonly #levers = new Map<string, { period: Period | undefined; until: number; first?: Promise<void> }>()
  readonly #renewals = new LRUCache<
    string,
    { renewAt: number | undefined; until: number; reading?: Promise<unknown>; failed?: true }
  >({
    max: MAX_CUSTOMERS,
  })

  constructor(config: LeverPeriodsConfig) {
    this.#config = config
  }

  /** The lever's reset for the customer, from what is cached; `learn` reads the customer's renewal if needed. */
  of(customerId: string, lever: string, learn: boolean): Reset | undefined {
    const now = this.#config.clock.now()
    const period = this.#period(lever, now)
    if (period === undefined || period.kind === 'none') return undefined
    if (period.kind === 'window') return period.reset
    const renewal = this.#renewals.get(customerId)
    if ((renewal === undefined || renewal.until <= now) && learn) this.#learnRenewal(customerId, now)
    if (renewal?.renewAt === undefined || renewal.renewAt <= now) return undefined
    return { resetSeconds: Math.ceil((renewal.renewAt - now) / 1000) }
  }

  /**
   * The lever's current period for the customer, reading what is not cached first (off the
   * request path: `status()`, threshold alerts). `id` is the same on every replica for one period:
   * the renewal time, the window's length (a window from now), or `'all'` when the lever never
   * resets; `endsAt` is when the period ends, when known. Rejects while the period is not known.
   */
  async current(customerId: string, lever: string): Promise<CurrentPeriod> {
    await this.learning(lever)
    const now = this.#config.clock.now()
    const period = this.#period(lever, now)
    // A rolling window has no boundaries: one "period" is a window from now, so an alert claimed
    // now is not sent again within the window. (Windows aligned on the epoch sent a burst's
    // alerts twice when the burst straddled a boundary.)
    if (period?.kind === 'window')
      return { id: `w${period.seconds}`, endsAt: now + period.seconds * 1000, reset: period.reset }
    // Not known (its read failed or is in flight): no id rather than a wrong one, which would send
    // an alert again once the period is known, or hold back the next period's.
    if (period === undefined) throw new Error(`the period of lever ${lever} is not known yet`)
    if (period.kind === 'subscription') {
      const renewal = this.#renewals.get(customerId)
      // Unknown, or passed (the subscription renewed since it was read): read now.
      if (renewal === undefined || renewal.until <= now || (renewal.renewAt !== undefined && renewal.renewAt <= now))
        await this.#learnRenewal(customerId, now)
      else if (renewal.reading !== undefined) await renewal.reading // another lever of the customer asked first
      const known = this.#renewals.get(customerId)
      if (known?.failed === true) throw new Error(`the renewal of ${customerId}'s subscription is not known yet`)
      const renewAt = known?.renewAt
      if (renewAt !== undefined && renewAt > now)
        return { id: `s${renewAt}`, endsAt: renewAt, reset: { resetSeconds: Math.ceil((renewAt - now) / 1000) } }
    }
    return { id: 'all', endsAt: undefined, reset: undefined } // never resets (nor renews)
  }

  /**
   * The first read of the lever's period while it is in flight, else `undefined`: the first
   * requests about a lever wait for it, once, so that their headers are complete. Later reads
   * (every 10 minutes, or after a failure) happen in the background only.
   */
  learning(lever: string): Promise<void> | undefined {
    this.#period(lever, this.#config.clock.now())
    return this.#levers.get(lever)?.first
  }

  #period(lever: string, now: number): Period | undefined {
    const known = this.#levers.get(lever)
    if (known !== undefined && known.until > now) return known.period
    // One read at a time: the entry stands for the read in flight until it lands.
    const reading = this.#config.client.getLever(lever).then(
      (data) => {
        this.#levers.set(lever, { period: periodOf(data), until: this.#config.clock.now() + RELEARN_MS })
      },
      (error: unknown) => {
        this.#levers.set(lever, { period: known?.period, until: this.#config.clock.now() + RETRY_MS })
        this.#failed(`lever:${lever}`, error)
      },
    )
    const first = known === undefined ? reading : undefined
    if (known === undefined && this.#levers.size >= MAX_LEVERS) this.#levers.clear()
    this.#levers.set(lever, { period: known?.period, until: now + RETRY_MS, first })
    return known?.period
  }

  #learnRenewal(customerId: string, now: number): Promise<unknown> {
    const known = this.#renewals.get(customerId)
    const reading = this.#config.client.listSubscriptions(customerId).then(
      (subscriptions) =>
        this.#renewals.set(customerId, {
          renewAt: earliestRenewal(subscriptions),
          until: this.#config.clock.now() + RELEARN_MS,
        }),
      (error: unknown) => {
        const failed = { renewAt: known?.renewAt, until: this.#config.clock.now() + RETRY_MS, failed: true as const }
        if (this.#renewals.get(customerId)?.reading === reading) this.#renewals.set(customerId, failed)
        this.#failed('subscriptions', error)
      },
    )
    this.#renewals.set(customerId, { renewAt: known?.renewAt, until: now + RETRY_MS, reading })
    return reading
  }

  #failed(key: string, error: unknown): void {
    const message = 'reading when a lever resets failed; RateLimit headers go without a reset for now'
    this.#config.log.throttled('debug', `reset:${key}`, message, {
      error: error instanceof Error ? error.message : String(error),
    })
  }
}

/**
 * The period in a lever's configuration. Planship does not document its shape; the emulator
 * (and this reading) uses `period: 'subscription' | 'all-time' | { windowSeconds }`.
 */
function periodOf(lever: Lever): Period {
  const period = lever.configuration?.['period']
  if (period === 'subscription') return { kind: 'subscription' }
  if (typeof period === 'object' && period !== null) {
    const seconds = (period as { windowSeconds?: unknown }).windowSeconds
    if (typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0)
      return { kind: 'window', seconds: Math.ceil(seconds), reset: windowReset(Math.ceil(seconds)) }
  }
  return { kind: 'none' }
}

function windowReset(seconds: number): Reset {
  return Object.freeze({ resetSeconds: seconds, windowSeconds: seconds })
}

/** The earliest renewal of the customer's active subscriptions: when some usage resets at the latest. */
function earliestRenewal(subscriptions: CustomerSubscription[]): number | undefined {
  let earliest: number | undefined
  for (const subscription of subscriptions) {
    if (subscription.is_active === false || typeof subscription.renew_at !== 'string') continue
    const at = Date.parse(subscription.renew_at)
    if (!Number.isNaN(at) && (earliest === undefined || at < earliest)) earliest = at
  }
  return earliest
}
