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

  const scan = (series: RecordSeries | undefined, periodStart: number): [number, number] => {
    if (series === undefined) return [0, 0]
    const start = rollingAfter !== undefined ? series.upperBound(rollingAfter) : series.lowerBound(periodStart)
    return [start, Math.max(start, series.upperBound(visibleUntil))]
  }
  const scanEach = (series: RecordSeries | undefined, periodStart: number): void => {
    const [start, end] = scan(series, periodStart)
    for (let i = start; i < end; i++) include(series?.items[i] as StoredRecord)
  }

  for (const meteringId of lever.meteringIds) {
    if (lever.scope === 'customer') {
      const earliest = bySubscriptionPeriod ? Math.min(...query.subscriptions.map((s) => s.lastRenewedAt)) : -Infinity
      // Unallocated records have no period to reset, so they count from the beginning.
      const hasUnallocated = index.unallocated(query.customerId, query.productId, meteringId) !== undefined
      scanEach(index.byCustomer(query.customerId, query.productId, meteringId), hasUnallocated ? -Infinity : earliest)
      continue
    }
    const unallocated = index.unallocated(query.customerId, query.productId, meteringId)
    if (lever.formula !== 'total') {
      for (const sub of query.subscriptions) {
        scanEach(index.bySubscription(sub.id, meteringId), bySubscriptionPeriod ? sub.lastRenewedAt : -Infinity)
      }
      scanEach(unallocated, -Infinity)
      continue
    }
    // The total formula needs only sums, and each series holds one subscription: sum ranges in O(log n).
    for (const sub of query.subscriptions) {
      const series = index.bySubscription(sub.id, meteringId)
      if (series === undefined) continue
      const range = scan(series, bySubscriptionPeriod ? sub.lastRenewedAt : -Infinity)
      let start = range[0]
      const end = range[1]
      if (bySubscriptionPeriod) {
        // Records reported in the very ms of a forced renewal, but before it, sort first among their equals.
        while (start < end && (series.items[start] as StoredRecord).seq < sub.periodStartSeq) start++
      }
      addSum(aggregate, sub.id, series.sumRange(start, end), end - start)
    }
    const [start, end] = scan(unallocated, -Infinity)
    if (unallocated !== undefined) addSum(aggregate, null, unallocated.sumRange(start, end), end - start)
  }
  return aggregate
}

/** Adds `count` records of `usage` in all, all unbucketed as far as the total formula cares. */
function addSum(aggregate: LeverAggregate, subscriptionId: string | null, usage: number, count: number): void {
  if (count === 0) return
  aggregate.sum += usage
  aggregate.byBucket.set(null, (aggregate.byBucket.get(null) ?? 0) + usage)
  let buckets = aggregate.bySubscription.get(subscriptionId)
  if (buckets === undefined) {
    buckets = new Map()
    aggregate.bySubscription.set(subscriptionId, buckets)
  }
  buckets.set(null, (buckets.get(null) ?? 0) + usage)
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
