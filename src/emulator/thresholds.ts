import type { StoredRecord } from './records.js'
import type { EmulatorState } from './state.js'

/** The console's alert thresholds: the fractions of a limit most apps alert at. */
export const CONSOLE_THRESHOLDS: readonly number[] = [0.8, 1]

/** A threshold crossing as the console's feed shows it (snake_case, as the rest of the feed). */
export interface ThresholdView {
  customer_id: string
  alternative_id: string | null
  lever: string
  threshold: number
  used: number
  limit: number
  at: string
}

/** Most crossings remembered: past it the oldest are forgotten (a console shows the recent ones). */
const MAX_SENT = 10_000

/**
 * Threshold crossings seen by Planship's side, for the console's live feed: after each record,
 * each lever it feeds (total levers with a limit) whose usage reached 80 % or 100 % of the
 * limit, once per customer × lever × threshold × period, as the meter's `alerts` send them.
 * Computed only while a console is open: reports are the emulator's hottest path.
 */
export class ThresholdFeed {
  readonly #sent = new Set<string>()

  crossed(record: StoredRecord, state: EmulatorState): ThresholdView[] {
    const customer = state.findCustomer(record.customerId)
    const product = state.catalog.productsById.get(record.productId)
    if (customer === undefined || product === undefined) return []
    const views: ThresholdView[] = []
    const entitlements = state.entitlements(customer, product)
    for (const lever of product.levers) {
      if (lever.type !== 'metered' || lever.formula === 'per-bucket' || !lever.meteringIds.includes(record.meteringId))
        continue
      const remaining = entitlements[lever.slug]
      if (typeof remaining !== 'number' || remaining < 0) continue // unlimited, or not a plain number
      const used = state.leverUsage(customer, product, lever).total
      const limit = used + remaining
      if (limit <= 0) continue
      const period = periodOf(lever.period, state, customer, product)
      for (const threshold of CONSOLE_THRESHOLDS) {
        if (used / limit < threshold) continue
        const key = `${customer.id}\u0000${lever.slug}\u0000${threshold}\u0000${period}`
        if (this.#sent.has(key)) continue
        if (this.#sent.size >= MAX_SENT) this.#sent.delete(this.#sent.values().next().value!)
        this.#sent.add(key)
        views.push({
          customer_id: customer.id,
          alternative_id: customer.alternativeId ?? null,
          lever: lever.slug,
          threshold,
          used,
          limit,
          at: new Date(state.now()).toISOString(),
        })
      }
    }
    return views
  }

  clear(): void {
    this.#sent.clear()
  }
}

/** Which period the lever's usage counts in now: the subscription's, the window's, or all time. */
function periodOf(
  period: unknown,
  state: EmulatorState,
  customer: Parameters<EmulatorState['activeSubscriptions']>[0],
  product: Parameters<EmulatorState['activeSubscriptions']>[1],
): string {
  if (typeof period === 'object' && period !== null) {
    const ms = (period as { windowSeconds: number }).windowSeconds * 1000
    return `w${Math.floor(state.now() / ms)}`
  }
  if (period === 'subscription') return `s${state.activeSubscriptions(customer, product)[0]?.lastRenewedAt ?? 0}`
  return 'all'
}
