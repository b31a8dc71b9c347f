import type { Lever } from './catalog.js'
import type { EntitlementValue } from './fixture.js'
import type { RecordIndex, RecordSeries, StoredRecord } from './records.js'

/** `LeverUsage` on the wire. */
export interface LeverUsageWire {
  total: number
  by_bucket: Record<string, number>
  by_subscription: Record<string, Array<{ usage: number; bucket: string | null }>>
}

/** The part of a subscription that decides which of its records are in the current period. */
export interface PeriodBounds {
  id: string
  lastRenewedAt: number
  periodStartSeq: number
}

export interface AggregationQuery {
  now: number
  aggregationLagMs: number
  customerId: string
  productId: string
  /** The customer's active subscriptions to plans of the lever's product. */
  subscriptions: readonly PeriodBounds[]
}

/** Usage of one lever in its current window, before the formula shapes it. */
export interface LeverAggregate {
  sum: number
  /** Key `null` is unbucketed usage. */
  byBucket: Map<string | null, number>
  /** Key `null` holds records that no subscription took (reported while the customer had none). */
  bySubscription: Map<string | null, Map<string | null, number>>
}

/**
 * Sums the records that count for `lever` now: visible (older than the aggregation lag), inside the
 * lever's period (subscription period since the last renewal, all time, or a rolling window) and in
 * its scope (the customer's subscriptions, or the customer's own records only).
 */
export function aggregateLever(index: RecordIndex, lever: Lever, query: AggregationQuery): LeverAggregate {
  const aggregate: LeverAggregate = { sum: 0, byBucket: new Map(), bySubscription: new Map() }
  const visibleUntil = query.now - query.aggregationLagMs
  const period = lever.period
  const rollingAfter = typeof period === 'object' ? query.now - period.windowSeconds * 1000 : undefined
  const bySubscriptionPeriod = period === 'subscription'
  const subscriptions = new Map(query.subscriptions.map((s) => [s.id, s]))

  const include = (record: StoredRecord): void => {
    if (record.subscriptionId !== null) {
      const sub = subscriptions.get(record.subscriptionId)
      if (sub === undefined) return
      if (bySubscriptionPeriod && (record.recordedAt < sub.lastRenewedAt || record.seq < sub.periodStartSeq)) return
    }
    add(aggregate, record)
  }

  const scan = (series: RecordSeries | undefined, periodStart: number): void => {
    if (series === undefined) return
    const start = rollingAfter !== undefined ? series.upperBound(rollingAfter) : series.lowerBound(periodStart)
    const end = series.upperBound(visibleUntil)
    const items = series.items
    for (let i = start; i < end; i++) include(items[i] as StoredRecord)
  }

  for (const meteringId of lever.meteringIds) {
    if (lever.scope === 'customer') {
      const earliest = bySubscriptionPeriod ? Math.min(...query.subscriptions.map((s) => s.lastRenewedAt)) : -Infinity
      // Unallocated records have no period to reset, so they count from the beginning.
      const hasUnallocated = index.unallocated(query.customerId, query.productId, meteringId) !== undefined
      scan(index.byCustomer(query.customerId, query.productId, meteringId), hasUnallocated ? -Infinity : earliest)
    } else {
      for (const sub of query.subscriptions) {
        scan(index.bySubscription(sub.id, meteringId), bySubscriptionPeriod ? sub.lastRenewedAt : -Infinity)
      }
      scan(index.unallocated(query.customerId, query.productId, meteringId), -Infinity)
    }
  }
  return aggregate
}

function add(aggregate: LeverAggregate, record: StoredRecord): void {
  aggregate.sum += record.usage
  aggregate.byBucket.set(record.bucket, (aggregate.byBucket.get(record.bucket) ?? 0) + record.usage)
  let buckets = aggregate.bySubscription.get(record.subscriptionId)
  if (buckets === undefined) {
    buckets = new Map()
    aggregate.bySubscription.set(record.subscriptionId, buckets)
  }
  buckets.set(record.bucket, (buckets.get(record.bucket) ?? 0) + record.usage)
}

/** The lever's aggregated value: the sum, or the number of distinct named buckets. */
export function leverTotal(lever: Lever, aggregate: LeverAggregate): number {
  if (lever.formula !== 'unique-buckets') return aggregate.sum
  let count = 0
  for (const bucket of aggregate.byBucket.keys()) if (bucket !== null) count++
  return count
}

/**
 * `LeverUsage` as Planship answers it. The total formula ignores buckets, so its usage is all under
 * bucket `"null"` / `null`, as in Planship's documentation.
 */
export function toLeverUsage(lever: Lever, aggregate: LeverAggregate): LeverUsageWire {
  const ignoreBuckets = lever.formula === 'total'
  const byBucket: Record<string, number> = {}
  if (ignoreBuckets) {
    if (aggregate.byBucket.size > 0) byBucket['null'] = aggregate.sum
  } else {
    for (const [bucket, usage] of aggregate.byBucket) byBucket[bucket ?? 'null'] = usage
  }
  const bySubscription: LeverUsageWire['by_subscription'] = {}
  for (const [subscriptionId, buckets] of aggregate.bySubscription) {
    const entries: Array<{ usage: number; bucket: string | null }> = []
    if (ignoreBuckets) {
      let usage = 0
      for (const value of buckets.values()) usage += value
      entries.push({ usage, bucket: null })
    } else {
      for (const [bucket, usage] of buckets) entries.push({ usage, bucket })
    }
    bySubscription[subscriptionId ?? 'null'] = entries
  }
  return { total: leverTotal(lever, aggregate), by_bucket: byBucket, by_subscription: bySubscription }
}

/**
 * A metered entitlement: the remaining allowance `max(0, limit − usage)`; `-1` (unlimited) stays
 * `-1`. Per-bucket levers answer an object with the remaining of `"null"` (unbucketed usage) and of
 * every bucket used in the current window; a bucket absent from it has the whole limit left.
 */
export function remainingAllowance(
  lever: Lever,
  limit: number,
  aggregate: LeverAggregate,
): EntitlementValue | Record<string, number> {
  if (lever.formula === 'per-bucket') {
    const remaining: Record<string, number> = {
      null: limit === -1 ? -1 : Math.max(0, limit - (aggregate.byBucket.get(null) ?? 0)),
    }
    for (const [bucket, usage] of aggregate.byBucket) {
      remaining[bucket ?? 'null'] = limit === -1 ? -1 : Math.max(0, limit - usage)
    }
    return remaining
  }
  if (limit === -1) return -1
  return Math.max(0, limit - leverTotal(lever, aggregate))
}
