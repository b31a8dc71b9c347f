import type { Clock } from '../types.js'
import type {
  LeverLimit,
  LimitRoom,
  PendingReport,
  Reservation,
  ReserveRequest,
  ReportBudget,
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
   * Most customers kept (the entitlements cache's `max`): past it the least recently active are
   * forgotten, together with their cached Planship data (`forget`). Customers with usage
   * reserved, pending, in flight, or acknowledged within the aggregation lag are kept (and
   * counted) until it is delivered and visible in Planship's numbers.
   */
  maxCustomers: number
  /**
   * Drops what is cached of the customer's Planship data (entitlements, usage), so that its next
   * decision reads Planship again; `false` when it cannot now (a read in flight), and the
   * customer is kept. Without it, a customer's acknowledged usage is kept as long as a cached
   * snapshot may lack it (`maxSnapshotAgeMs`).
   */
  forget?: ((customerId: string) => boolean) | undefined
  /**
   * Most keys (customer × metering id × bucket) with usage not yet delivered. Aggregation keeps
   * this small even in a long outage; past it, a request that would add a key is refused
   * (`backlog`), so memory stays bounded and no usage is dropped.
   */
  maxPendingKeys: number
  clock: Clock
}

const FORGET_SCAN = 16
/** A customer's place in the forgetting order is refreshed at most this often (a Map move costs). */
const TOUCH_INTERVAL_MS = 1_000

/** The cell a reservation was taken from: settling it needs no lookup. */
const CELL = Symbol('cell')
type HeldReservation = Reservation & { [CELL]?: Cell }

/** Local usage of one customer × metering id × bucket that Planship has not acknowledged. */
interface Cell {
  key: UsageKey
  /** Admitted requests still running. */
  reserved: number
  /** Finished requests waiting for the next flush. */
  pending: number
  /** In a report POST right now, taken for it at `sendingSince`. */
  sending: number
  sendingSince: number
  /** When usage was last committed: a key without new usage for a while is idle. */
  lastUsageAt: number
  /** Failed deliveries in a row, and the clock time before which the key is not retried. */
  failures: number
  retryAt: number
}

/** A report Planship acknowledged: its units may not be in Planship's numbers yet. */
interface Acked {
  meteringId: string
  bucket: string | undefined
  units: number
  sentAt: number
  at: number
  /** Position in the customer's acknowledgements, counting from 0, never reused. */
  seq: number
}

/**
 * What this process knows of one lever (one bucket of a per-bucket lever) of one customer: the
 * newest snapshot's remaining allowance, and how much of our acknowledged usage it contains.
 *
 * Planship aggregates asynchronously, so a snapshot may or may not contain a report acknowledged
 * just before it. The fall of `remaining` between two snapshots is what Planship absorbed
 * meanwhile: that many of our oldest acknowledged units stop counting, the rest keep counting.
 */
interface View {
  snapshotAt: number
  receivedAt: number
  remaining: number
  /** Acknowledgements before `cursor` are in Planship's numbers; so are `partial` units of the one at it. */
  cursor: number
  partial: number
  /** Absorbed units not matched yet: reports Planship applied before their answer reached us. */
  credit: number
}

interface CustomerState {
  cells: Map<string, Cell>
  /** The same cells, iterated on every decision without allocating an iterator. */
  cellList: Cell[]
  /** Clock time of the last move to the most-recently-active end of the map. */
  touchedAt: number
  /** Oldest first. */
  acked: Acked[]
  nextSeq: number
  views: Map<string, View>
}

/** The default store: one process, synchronous, so check-and-reserve is atomic. */
export class MemoryUsageStore implements UsageStore {
  readonly #config: MemoryUsageStoreConfig
  readonly #customers = new Map<string, CustomerState>()
  readonly #pendingCells = new Set<Cell>()
  #unsentUnits = 0
  /** Keys with usage pending or being sent. */
  #unsentKeys = 0

  constructor(config: MemoryUsageStoreConfig) {
    this.#config = config
  }

  reserve(request: ReserveRequest): ReserveResult {
    let customer = this.#customers.get(request.customerId)
    if (customer !== undefined) {
      const now = this.#config.clock.now()
      if (now - customer.touchedAt >= TOUCH_INTERVAL_MS) {
        // Most recently active last, so that the oldest are first in line to be forgotten.
        customer.touchedAt = now
        this.#customers.delete(request.customerId)
        this.#customers.set(request.customerId, customer)
      }
    } else if (request.limits.length > 0) {
      customer = this.#customer(request.customerId)
    }
    const checked = this.#check(customer, request)
    if (checked !== undefined && 'ok' in checked) {
      if (customer!.cellList.length === 0 && customer!.acked.length === 0) this.#customers.delete(request.customerId)
      return checked
    }
    const least = checked
    const cell = this.#cell(request, customer)
    if (this.#unsentKeys >= this.#config.maxPendingKeys && cell.pending + cell.sending === 0) {
      this.#dropIfEmpty(cell)
      return { ok: false, backlog: true }
    }
    cell.reserved += request.cost
    const { customerId, meteringId, bucket, cost } = request
    const reservation: HeldReservation = { customerId, meteringId, bucket, cost, [CELL]: cell }
    return least === undefined ? { ok: true, reservation } : { ok: true, reservation, least }
  }

  extend(reservation: Reservation, request: ReserveRequest): ReserveResult {
    const cell = this.#held(reservation)
    const checked = this.#check(this.#customers.get(request.customerId)!, request)
    if (checked !== undefined && 'ok' in checked) return checked
    cell.reserved += request.cost
    reservation.cost += request.cost
    return checked === undefined ? { ok: true, reservation } : { ok: true, reservation, least: checked }
  }

  /**
   * Whether every limit has room for `request.cost` after the customer's local usage: the lever
   * left with the least room when all do (none without limits), the refusal when one does not.
   */
  #check(
    customer: CustomerState | undefined,
    request: ReserveRequest,
  ): { lever: string; remaining: number } | Extract<ReserveResult, { lever: string }> | undefined {
    const receivedAt = request.receivedAt ?? request.snapshotAt
    let least: { lever: string; remaining: number } | undefined
    for (const limit of request.limits) {
      const view = this.#reconcile(customer!, limit, request, receivedAt)
      const left = view.remaining - localUsage(customer!, limit, request.bucket, view, this.#config.aggregationLagMs)
      // `left <= 0` also refuses a zero cost: a used-up (or 0, "no access") lever admits nothing.
      if (left < request.cost || left <= 0) return { ok: false, lever: limit.lever, remaining: Math.max(0, left) }
      if (least === undefined || left - request.cost < least.remaining)
        least = { lever: limit.lever, remaining: left - request.cost }
    }
    return least
  }

  /**
   * What admission sees for each limit, without reserving: the units left after this process's
   * usage that the snapshot lacks (`left`, below 0 when overdrawn), and that usage (`unseen`).
   * Reconciles as a decision does, so it answers exactly what `reserve` would check.
   */
  available(request: ReserveRequest): LimitRoom[] {
    const customer = this.#customers.get(request.customerId)
    const receivedAt = request.receivedAt ?? request.snapshotAt
    return request.limits.map((limit) => {
      if (customer === undefined) return { lever: limit.lever, left: limit.remaining, unseen: 0 }
      const view = this.#reconcile(customer, limit, request, receivedAt)
      const unseen = localUsage(customer, limit, request.bucket, view, this.#config.aggregationLagMs)
      return { lever: limit.lever, left: view.remaining - unseen, unseen }
    })
  }

  /**
   * The customer's Planship data changed (a refresh): what was learned by comparing its snapshots
   * is dropped, and the next snapshot starts afresh (usage acknowledged within the aggregation lag
   * of it counts again, as for a first snapshot). Its snapshot may carry the same clock time as
   * the one before (a fast refresh, a coarse clock), which reconciliation would otherwise ignore.
   */
  async markRefreshed(customerId: string): Promise<void> {
    this.#customers.get(customerId)?.views.clear()
  }

  /** Buckets of `meteringIds` the customer has local usage in (reserved, pending or in flight). */
  bucketsOf(customerId: string, meteringIds: readonly string[]): string[] {
    const buckets = new Set<string>()
    for (const cell of this.#customers.get(customerId)?.cellList ?? []) {
      if (cell.key.bucket !== undefined && meteringIds.includes(cell.key.meteringId)) buckets.add(cell.key.bucket)
    }
    return [...buckets]
  }

  release(reservation: Reservation): void {
    const cell = this.#held(reservation)
    cell.reserved -= reservation.cost
    this.#dropIfEmpty(cell)
  }

  commit(reservation: Reservation, usage: number): void {
    const cell = this.#held(reservation)
    cell.reserved -= reservation.cost
    if (usage > 0) {
      if (cell.pending + cell.sending === 0) this.#unsentKeys++
      cell.lastUsageAt = this.#config.clock.now()
      cell.pending += usage
      this.#unsentUnits += usage
      this.#pendingCells.add(cell)
    }
    this.#dropIfEmpty(cell)
  }

  takePending(dueBy?: number, budget?: ReportBudget): PendingReport[] {
    const now = this.#config.clock.now()
    const reports: PendingReport[] = []
    let busy = 0
    // Cells are in the order they became pending: the longest waiting go first.
    for (const cell of this.#pendingCells) {
      if (dueBy !== undefined && cell.retryAt > dueBy) continue
      if (budget !== undefined && cell.lastUsageAt >= budget.idleBefore && busy++ >= budget.busy) continue
      reports.push({ ...cell.key, usage: cell.pending, failures: cell.failures })
      if (cell.sending === 0) cell.sendingSince = now
      cell.sending += cell.pending
      cell.pending = 0
      this.#pendingCells.delete(cell)
    }
    this.#sweep()
    return reports
  }

  acknowledge(report: PendingReport, at: number): void {
    const cell = this.#cell(report)
    const customer = this.#customers.get(report.customerId)!
    cell.sending -= report.usage
    cell.failures = 0
    cell.retryAt = 0
    customer.acked.push({
      meteringId: report.meteringId,
      bucket: report.bucket,
      units: report.usage,
      sentAt: report.sentAt ?? cell.sendingSince,
      at,
      seq: customer.nextSeq++,
    })
    this.#unsentUnits -= report.usage
    if (cell.pending + cell.sending === 0) this.#unsentKeys--
    this.#dropIfEmpty(cell)
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

  /**
   * The lever's view, brought up to the request's snapshot when that is newer. A request deciding
   * from an older snapshot than the view's gets the newer one: what was absorbed stays absorbed.
   */
  #reconcile(customer: CustomerState, limit: LeverLimit, request: ReserveRequest, receivedAt: number): View {
    const id = limit.perBucket ? `${limit.lever}\u0000${request.bucket ?? '\u0000'}` : limit.lever
    let view = customer.views.get(id)
    if (view === undefined) {
      // No earlier snapshot to compare with: acknowledged usage counts for the aggregation lag.
      view = {
        snapshotAt: request.snapshotAt,
        receivedAt,
        remaining: limit.remaining,
        cursor: customer.acked[0]?.seq ?? customer.nextSeq,
        partial: 0,
        credit: 0,
      }
      customer.views.set(id, view)
      return view
    }
    if (request.snapshotAt <= view.snapshotAt) return view
    const absorbed = view.remaining - limit.remaining
    view.snapshotAt = request.snapshotAt
    view.receivedAt = receivedAt
    view.remaining = limit.remaining
    const visibleBefore = view.snapshotAt - this.#config.aggregationLagMs
    if (absorbed >= 0) {
      view.credit += absorbed
      absorb(customer, view, limit, request.bucket, visibleBefore)
    } else {
      // A rise: a new period, a rolling window moving on, or usage Planship no longer counts. Our
      // most recent absorbed units count again (within the lag): never fewer than are real.
      unabsorb(customer, view, limit, request.bucket, -absorbed, visibleBefore)
    }
    return view
  }

  /**
   * A reservation's cell: the one it was taken from, as a reserved cell is never dropped. One of
   * a zero-unit reservation may have been, once its other usage was delivered: then the key's
   * cell now, made anew if need be, and the reservation follows it.
   */
  #held(reservation: Reservation): Cell {
    const held = reservation as HeldReservation
    const cell = held[CELL]
    if (cell !== undefined && (cell.reserved > 0 || this.#customers.get(cell.key.customerId)?.cellList.includes(cell)))
      return cell
    return (held[CELL] = this.#cell(reservation))
  }

  #customer(customerId: string): CustomerState {
    let customer = this.#customers.get(customerId)
    if (customer === undefined) {
      if (this.#customers.size >= this.#config.maxCustomers) this.#forgetOldest(this.#config.maxCustomers - 1)
      const touchedAt = this.#config.clock.now()
      customer = { cells: new Map(), cellList: [], touchedAt, acked: [], nextSeq: 0, views: new Map() }
      this.#customers.set(customerId, customer)
    }
    return customer
  }

  /** `known`: the key's customer, when the caller already looked it up. */
  #cell(key: UsageKey, known?: CustomerState): Cell {
    const customer = known ?? this.#customer(key.customerId)
    const cells = customer.cells
    const id = cellId(key)
    let cell = cells.get(id)
    if (cell === undefined) {
      cell = {
        key: { customerId: key.customerId, meteringId: key.meteringId, bucket: key.bucket },
        reserved: 0,
        pending: 0,
        sending: 0,
        sendingSince: 0,
        lastUsageAt: 0,
        failures: 0,
        retryAt: 0,
      }
      cells.set(id, cell)
      customer.cellList.push(cell)
    }
    return cell
  }

  /**
   * Forgets the least recently active customers that have nothing left to send. Looks at a few
   * of the oldest only, so a backlog of pending usage never makes this slow.
   *
   * A customer is forgotten with its cached snapshots, never alone: its acknowledged usage counts
   * against snapshots older than it, and only a snapshot read after the aggregation lag is sure
   * to contain it. Once the snapshots are dropped (`forget`), the next decision reads Planship
   * anew, so usage acknowledged before `now − lag` is needed no more. (The reverted attempt
   * pruned that usage and kept the old snapshot: a customer at 10 of 20 got 11 more.)
   */
  #forgetOldest(keep: number): void {
    const visibleBefore = this.#visibleBefore()
    let looked = 0
    for (const [customerId, customer] of this.#customers) {
      if (this.#customers.size <= keep || ++looked > FORGET_SCAN) return
      // A customer kept goes to the back: otherwise a few with usage waiting at the front would
      // stop every scan there, and the delivered ones behind them would never be forgotten.
      this.#customers.delete(customerId)
      if (!this.#forgot(customerId, customer, visibleBefore)) this.#customers.set(customerId, customer)
    }
  }

  /** Acknowledged usage before this time is surely in the numbers of the next snapshot read. */
  #visibleBefore(): number {
    // Without dropping snapshots, acknowledged usage is needed for as long as a snapshot lives.
    const horizon = this.#config.forget === undefined ? this.#config.maxSnapshotAgeMs : 0
    return this.#config.clock.now() - this.#config.aggregationLagMs - horizon
  }

  /** Whether the customer could be forgotten (its cached snapshots with it); the caller drops it. */
  #forgot(customerId: string, customer: CustomerState, visibleBefore: number): boolean {
    if (customer.cellList.length > 0) return false // usage reserved, pending or in flight: counted until delivered
    if ((customer.acked.at(-1)?.at ?? -Infinity) > visibleBefore) return false // not surely in Planship's numbers yet
    return this.#config.forget?.(customerId) ?? true // false: a read of its data in flight
  }

  #dropIfEmpty(cell: Cell): void {
    if (cell.reserved !== 0 || cell.pending !== 0 || cell.sending !== 0) return
    const customer = this.#customers.get(cell.key.customerId)
    if (customer === undefined || !customer.cells.delete(cellId(cell.key))) return
    customer.cellList.splice(customer.cellList.indexOf(cell), 1)
    if (customer.cellList.length === 0 && customer.acked.length === 0) this.#customers.delete(cell.key.customerId)
  }

  /**
   * Forgets acknowledged usage that no usable snapshot can be missing any more and, past the
   * bound, the oldest customers that can go: a backlog delivered after new customers stopped
   * coming leaves no more than the bound (arrivals alone would never trim it).
   */
  #sweep(): void {
    const forgetBefore = this.#config.clock.now() - this.#config.aggregationLagMs - this.#config.maxSnapshotAgeMs
    const visibleBefore = this.#visibleBefore()
    let over = this.#customers.size - this.#config.maxCustomers
    for (const [customerId, customer] of this.#customers) {
      pruneAcked(customer, forgetBefore)
      const empty = customer.cellList.length === 0 && customer.acked.length === 0
      if (empty || (over > 0 && this.#forgot(customerId, customer, visibleBefore))) {
        this.#customers.delete(customerId)
        over--
      }
    }
  }
}

function cellId(key: UsageKey): string {
  return key.bucket === undefined ? key.meteringId : `${key.meteringId}\u0000${key.bucket}`
}

function pruneAcked(customer: CustomerState, before: number): void {
  let drop = 0
  while (drop < customer.acked.length && customer.acked[drop]!.at <= before) drop++
  if (drop > 0) customer.acked.splice(0, drop)
}

/** Whether usage under `meteringId` and `bucket` counts against `limit` for a request in `requestBucket`. */
function feeds(limit: LeverLimit, meteringId: string, bucket: string | undefined, requestBucket: string | undefined) {
  return limit.meteringIds.includes(meteringId) && (!limit.perBucket || bucket === requestBucket)
}

/** Index in `customer.acked` of the view's cursor (acknowledgements pruned since count as absorbed). */
function cursorIndex(customer: CustomerState, view: View): number {
  const first = customer.acked[0]?.seq ?? customer.nextSeq
  if (view.cursor < first) {
    view.cursor = first
    view.partial = 0
  }
  return view.cursor - first
}

/**
 * Marks as absorbed, oldest first, the acknowledged units that the view's credit accounts for,
 * and those older than the aggregation lag (Planship has them by now). A report sent after the
 * snapshot's answer arrived cannot be in it, so the walk stops there.
 */
function absorb(
  customer: CustomerState,
  view: View,
  limit: LeverLimit,
  bucket: string | undefined,
  visibleBefore: number,
): void {
  const acked = customer.acked
  let i = cursorIndex(customer, view)
  for (; i < acked.length; i++) {
    const record = acked[i]!
    if (!feeds(limit, record.meteringId, record.bucket, bucket)) continue
    if (record.at <= visibleBefore) {
      // In Planship's numbers by now, whatever the credit says; the fall includes it, so it uses
      // its share of the credit first (else newer units would be taken for absorbed in its place).
      view.credit -= Math.min(view.credit, record.units - view.partial)
      view.partial = 0
      continue
    }
    if (view.credit <= 0 || record.sentAt >= view.receivedAt) break
    const take = Math.min(view.credit, record.units - view.partial)
    view.credit -= take
    view.partial += take
    if (view.partial < record.units) break
    view.partial = 0
  }
  view.cursor = acked[i]?.seq ?? customer.nextSeq
  // What is left over can only be reports of ours still in flight that Planship already applied.
  let inFlight = 0
  for (const cell of customer.cellList) {
    if (
      cell.sending > 0 &&
      cell.sendingSince < view.receivedAt &&
      feeds(limit, cell.key.meteringId, cell.key.bucket, bucket)
    )
      inFlight += cell.sending
  }
  view.credit = Math.min(view.credit, inFlight)
}

/** Takes back up to `units` absorbed units, newest first, down to those older than the lag. */
function unabsorb(
  customer: CustomerState,
  view: View,
  limit: LeverLimit,
  bucket: string | undefined,
  units: number,
  visibleBefore: number,
): void {
  let rise = units
  const fromCredit = Math.min(view.credit, rise)
  view.credit -= fromCredit
  rise -= fromCredit
  const fromPartial = Math.min(view.partial, rise)
  view.partial -= fromPartial
  rise -= fromPartial
  const acked = customer.acked
  for (let i = cursorIndex(customer, view) - 1; i >= 0 && rise > 0; i--) {
    const record = acked[i]!
    if (!feeds(limit, record.meteringId, record.bucket, bucket)) continue
    if (record.at <= visibleBefore) break
    const back = Math.min(record.units, rise)
    rise -= back
    view.cursor = record.seq
    view.partial = record.units - back
  }
}

/** Units this process consumed that the view's snapshot does not contain. */
function localUsage(
  customer: CustomerState,
  limit: LeverLimit,
  bucket: string | undefined,
  view: View,
  aggregationLagMs: number,
): number {
  let units = 0
  let sentOrAcked = 0
  for (const cell of customer.cellList) {
    if (!feeds(limit, cell.key.meteringId, cell.key.bucket, bucket)) continue
    units += cell.reserved + cell.pending
    sentOrAcked += cell.sending
  }
  const visibleBefore = view.snapshotAt - aggregationLagMs
  const acked = customer.acked
  for (let i = cursorIndex(customer, view); i < acked.length; i++) {
    const record = acked[i]!
    if (record.at <= visibleBefore || !feeds(limit, record.meteringId, record.bucket, bucket)) continue
    sentOrAcked += record.units - (record.seq === view.cursor ? view.partial : 0)
  }
  return units + Math.max(0, sentOrAcked - view.credit)
}
