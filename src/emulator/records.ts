/** Metering records and the indexes that keep aggregation fast with many records. */

export interface StoredRecord {
  /** Insertion order; renewals cut periods by it, which stays exact when the clock does not move. */
  seq: number
  id: string
  usage: number
  meteringId: string
  customerId: string
  productId: string
  subscriptionId: string | null
  bucket: string | null
  /** Emulator time (ms) of the report. */
  recordedAt: number
}

/** Records of one key, sorted by `recordedAt` so that time windows are found by binary search. */
export class RecordSeries {
  readonly items: StoredRecord[] = []
  /** `prefix[i]` is the usage of `items[0..i)`, so a range sums in O(1) however many records a customer has. */
  private readonly prefix: number[] = [0]

  insert(record: StoredRecord): void {
    const items = this.items
    // Almost always an append; an injected clock that steps back still keeps the order.
    let i = items.length
    while (i > 0 && (items[i - 1] as StoredRecord).recordedAt > record.recordedAt) i--
    if (i === items.length) {
      items.push(record)
      this.prefix.push((this.prefix[i] as number) + record.usage)
      return
    }
    items.splice(i, 0, record)
    this.prefix.length = i + 1
    for (let k = i; k < items.length; k++)
      this.prefix.push((this.prefix[k] as number) + (items[k] as StoredRecord).usage)
  }

  /** Sum of `usage` of `items[start..end)`. */
  sumRange(start: number, end: number): number {
    return (this.prefix[end] as number) - (this.prefix[start] as number)
  }

  /** Index of the first record with `recordedAt >= time`. */
  lowerBound(time: number): number {
    let lo = 0
    let hi = this.items.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.items[mid] as StoredRecord).recordedAt < time) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Index of the first record with `recordedAt > time`. */
  upperBound(time: number): number {
    let lo = 0
    let hi = this.items.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.items[mid] as StoredRecord).recordedAt <= time) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/**
 * Every record once in `all`, and in two keyed series: per customer (for customer-scoped levers and
 * `recordedUsage`), and per subscription, or per customer when no subscription took it.
 */
export class RecordIndex {
  private readonly allRecords: StoredRecord[] = []
  private readonly series = new Map<string, RecordSeries>()

  add(record: StoredRecord): void {
    this.allRecords.push(record)
    this.seriesFor(customerKey(record.customerId, record.productId, record.meteringId)).insert(record)
    const key =
      record.subscriptionId === null
        ? unallocatedKey(record.customerId, record.productId, record.meteringId)
        : subscriptionKey(record.subscriptionId, record.meteringId)
    this.seriesFor(key).insert(record)
  }

  all(): readonly StoredRecord[] {
    return this.allRecords
  }

  byCustomer(customerId: string, productId: string, meteringId: string): RecordSeries | undefined {
    return this.series.get(customerKey(customerId, productId, meteringId))
  }

  bySubscription(subscriptionId: string, meteringId: string): RecordSeries | undefined {
    return this.series.get(subscriptionKey(subscriptionId, meteringId))
  }

  unallocated(customerId: string, productId: string, meteringId: string): RecordSeries | undefined {
    return this.series.get(unallocatedKey(customerId, productId, meteringId))
  }

  clear(): void {
    this.allRecords.length = 0
    this.series.clear()
  }

  private seriesFor(key: string): RecordSeries {
    let series = this.series.get(key)
    if (series === undefined) {
      series = new RecordSeries()
      this.series.set(key, series)
    }
    return series
  }
}

// Only the last part (the metering id) is free text; the others are UUIDs, so keys cannot collide.
function customerKey(customerId: string, productId: string, meteringId: string): string {
  return `c\u0000${customerId}\u0000${productId}\u0000${meteringId}`
}
function subscriptionKey(subscriptionId: string, meteringId: string): string {
  return `s\u0000${subscriptionId}\u0000${meteringId}`
}
function unallocatedKey(customerId: string, productId: string, meteringId: string): string {
  return `u\u0000${customerId}\u0000${productId}\u0000${meteringId}`
}
