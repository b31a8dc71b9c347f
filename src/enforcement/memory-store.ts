import type { Clock } from '../options.js'
import type {
  LeverLimit,
  PendingReport,
  Reservation,
  ReserveRequest,
  ReserveResult,
  UsageKey,
  UsageStore,
} from './store.js'

export interface MemoryUsageStoreConfig {
  /** How long acknowledged usage may stay invisible in Planship's numbers, in ms. */
  aggregationLagMs: number
  /** How old a snapshot can be and still be used, in ms (cache ttl + max stale). */
  maxSnapshotAgeMs: number
  /**
   * Most customers kept with only acknowledged usage (the entitlements cache's `max`): past it
   * the least recently active are forgotten, as their cached entitlements are too. Customers
   * with usage reserved, pending, in flight, or acknowledged within the aggregation lag are kept.
   */
  maxCustomers: number
  /**
   * Most keys (customer × metering id × bucket) with usage not yet delivered. Aggregation keeps
   * this small even in a long outage; past it, a request that would add a key is refused
   * (`backlog`), so memory stays bounded and no usage is dropped.
   */
  maxPendingKeys: number
  clock: Clock
}

const FORGET_SCAN = 16

/** Local usage of one customer × metering id × bucket. */
interface Cell {
  key: UsageKey
  /** Admitted requests still running. */
  reserved: number
  /** Finished requests waiting for the next flush. */
  pending: number
  /** In a report POST right now. */
  sending: number
  /** Failed deliveries in a row, and the clock time before which the key is not retried. */
  failures: number
  retryAt: number
  /** Acknowledged by Planship, maybe not yet in its aggregates. Oldest first. */
  acked: Array<{ units: number; at: number }>
}

/** The default store: one process, synchronous, so check-and-reserve is atomic. */
export class MemoryUsageStore implements UsageStore {
  readonly #config: MemoryUsageStoreConfig
  readonly #customers = new Map<string, Map<string, Cell>>()
  readonly #pendingCells = new Set<Cell>()
  #unsentUnits = 0
  /** Keys with usage pending or being sent. */
  #unsentKeys = 0

  constructor(config: MemoryUsageStoreConfig) {
    this.#config = config
  }

  reserve(request: ReserveRequest): ReserveResult {
    const cells = this.#customers.get(request.customerId)
    if (cells !== undefined) {
      // Most recently active last, so that the oldest are first in line to be forgotten.
      this.#customers.delete(request.customerId)
      this.#customers.set(request.customerId, cells)
    }
    const visibleBefore = request.snapshotAt - this.#config.aggregationLagMs
    for (const limit of request.limits) {
      const left = limit.remaining - (cells === undefined ? 0 : localUsage(cells, limit, request, visibleBefore))
      // `left <= 0` also refuses a zero cost: a used-up (or 0, "no access") lever admits nothing.
      if (left < request.cost || left <= 0) return { ok: false, lever: limit.lever, remaining: Math.max(0, left) }
    }
    const cell = this.#cell(request)
    if (this.#unsentKeys >= this.#config.maxPendingKeys && cell.pending + cell.sending === 0) {
      this.#dropIfEmpty(cell)
      return { ok: false, backlog: true }
    }
    cell.reserved += request.cost
    const { customerId, meteringId, bucket, cost } = request
    return { ok: true, reservation: { customerId, meteringId, bucket, cost } }
  }

  release(reservation: Reservation): void {
    const cell = this.#cell(reservation)
    cell.reserved -= reservation.cost
    this.#dropIfEmpty(cell)
  }

  commit(reservation: Reservation, usage: number): void {
    const cell = this.#cell(reservation)
    cell.reserved -= reservation.cost
    if (usage > 0) {
      if (cell.pending + cell.sending === 0) this.#unsentKeys++
      cell.pending += usage
      this.#unsentUnits += usage
      this.#pendingCells.add(cell)
    }
    this.#dropIfEmpty(cell)
  }

  takePending(dueBy?: number): PendingReport[] {
    const reports: PendingReport[] = []
    for (const cell of this.#pendingCells) {
      if (dueBy !== undefined && cell.retryAt > dueBy) continue
      reports.push({ ...cell.key, usage: cell.pending, failures: cell.failures })
      cell.sending += cell.pending
      cell.pending = 0
      this.#pendingCells.delete(cell)
    }
    this.#sweep()
    return reports
  }

  acknowledge(report: PendingReport, at: number): void {
    const cell = this.#cell(report)
    cell.sending -= report.usage
    cell.failures = 0
    cell.retryAt = 0
    cell.acked.push({ units: report.usage, at })
    this.#unsentUnits -= report.usage
    if (cell.pending + cell.sending === 0) this.#unsentKeys--
  }

  restore(report: PendingReport, retryAt = 0): void {
    const cell = this.#cell(report)
    cell.sending -= report.usage
    cell.pending += report.usage
    cell.failures = report.failures + 1
    cell.retryAt = retryAt
    this.#pendingCells.add(cell)
  }

  discard(report: PendingReport): void {
    const cell = this.#cell(report)
    cell.sending -= report.usage
    this.#unsentUnits -= report.usage
    if (cell.pending + cell.sending === 0) this.#unsentKeys--
    this.#dropIfEmpty(cell)
  }

  pendingUnits(): number {
    return this.#unsentUnits
  }

  pendingKeys(): number {
    return this.#unsentKeys
  }

  /** Customers with local state, for tests and memory checks. */
  get size(): number {
    return this.#customers.size
  }

  #cell(key: UsageKey): Cell {
    let cells = this.#customers.get(key.customerId)
    if (cells === undefined) {
      cells = new Map()
      this.#customers.set(key.customerId, cells)
      if (this.#customers.size > this.#config.maxCustomers) this.#forgetOldest()
    }
    const id = cellId(key)
    let cell = cells.get(id)
    if (cell === undefined) {
      cell = {
        key: { customerId: key.customerId, meteringId: key.meteringId, bucket: key.bucket },
        reserved: 0,
        pending: 0,
        sending: 0,
        failures: 0,
        retryAt: 0,
        acked: [],
      }
      cells.set(id, cell)
    }
    return cell
  }

  /**
   * Forgets the least recently active customers that have nothing left to send. Looks at a few
   * of the oldest only, so a backlog of pending usage never makes this slow.
   */
  #forgetOldest(): void {
    // Usage Planship acknowledged within the lag may be missing from any snapshot: keep it.
    const visibleBefore = this.#config.clock.now() - this.#config.aggregationLagMs
    let looked = 0
    for (const [customerId, cells] of this.#customers) {
      if (this.#customers.size <= this.#config.maxCustomers || ++looked > FORGET_SCAN) return
      let busy = false
      for (const cell of cells.values()) {
        pruneAcked(cell, visibleBefore)
        busy ||= cell.reserved !== 0 || cell.pending !== 0 || cell.sending !== 0 || cell.acked.length !== 0
      }
      if (!busy) this.#customers.delete(customerId)
    }
  }

  #dropIfEmpty(cell: Cell): void {
    if (cell.reserved !== 0 || cell.pending !== 0 || cell.sending !== 0 || cell.acked.length !== 0) return
    const cells = this.#customers.get(cell.key.customerId)
    if (cells === undefined) return
    cells.delete(cellId(cell.key))
    if (cells.size === 0) this.#customers.delete(cell.key.customerId)
  }

  /** Forgets acknowledged usage that no usable snapshot can be missing any more. */
  #sweep(): void {
    const forgetBefore = this.#config.clock.now() - this.#config.aggregationLagMs - this.#config.maxSnapshotAgeMs
    for (const cells of this.#customers.values()) {
      for (const cell of cells.values()) {
        pruneAcked(cell, forgetBefore)
        this.#dropIfEmpty(cell)
      }
    }
  }
}

function cellId(key: UsageKey): string {
  return key.bucket === undefined ? key.meteringId : `${key.meteringId}\u0000${key.bucket}`
}

function pruneAcked(cell: Cell, before: number): void {
  let drop = 0
  while (drop < cell.acked.length && cell.acked[drop]!.at <= before) drop++
  if (drop > 0) cell.acked.splice(0, drop)
}

/** Units this process consumed that the snapshot cannot contain yet. */
function localUsage(cells: Map<string, Cell>, limit: LeverLimit, request: UsageKey, visibleBefore: number): number {
  let units = 0
  for (const cell of cells.values()) {
    if (!limit.meteringIds.includes(cell.key.meteringId)) continue
    if (limit.perBucket && cell.key.bucket !== request.bucket) continue
    units += cell.reserved + cell.pending + cell.sending
    // Newest first, stopping at the first the snapshot contains. Reads only: another request may
    // still decide from an older snapshot, so pruning is left to the sweep.
    for (let i = cell.acked.length - 1; i >= 0 && cell.acked[i]!.at > visibleBefore; i--) units += cell.acked[i]!.units
  }
  return units
}
