import type { EventSink } from '../events.js'
import type { Log } from '../log.js'
import type { Clock, MaybePromise } from '../types.js'

// The in-memory store answers synchronously, a shared one may not.
export type { MaybePromise }

/** Whether a MaybePromise is pending (any thenable, not only native promises). */
export function isPromiseLike<T>(value: MaybePromise<T>): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T> | null)?.then === 'function'
}

/**
 * Where reservations and pending usage live. The in-memory store serves one process; a shared
 * store (Redis, say) can implement the same interface so several replicas enforce one quota.
 * Methods may return promises; `reserve` must check and reserve atomically.
 */
export interface UsageStore {
  /** Checks every limit for room for `cost` and, when all have it, reserves `cost`. */
  reserve(request: ReserveRequest): MaybePromise<ReserveResult>
  /**
   * Reserves `request.cost` more units on a reservation not settled yet (a stream going on),
   * checked against `request.limits` as `reserve` checks a new one, in one atomic step. When
   * they fit, the store adds them to `reservation.cost` and they settle with it; when they do
   * not, nothing changes. `request`'s key is the reservation's.
   */
  extend(reservation: Reservation, request: ReserveRequest): MaybePromise<ReserveResult>
  /** The request was not reported (failed, denied downstream): its reservation is returned. */
  release(reservation: Reservation): MaybePromise<void>
  /** The request is reported: its reservation becomes `usage` pending units. */
  commit(reservation: Reservation, usage: number): MaybePromise<void>
  /**
   * Takes pending usage, one report per key, and marks it as being sent: every key, or with
   * `dueBy` only those not waiting out a retry backoff at that clock time. With a `budget`, keys
   * that got usage at or after `budget.idleBefore` (busy keys, which merge more by waiting) are
   * taken `budget.busy` at most, longest-waiting first; idle keys are all taken.
   */
  takePending(dueBy?: number, budget?: ReportBudget): MaybePromise<PendingReport[]>
  /** Planship acknowledged `report` at clock time `at`. */
  acknowledge(report: PendingReport, at: number): MaybePromise<void>
  /**
   * Sending `report` failed and may succeed later: its units are pending again, not to be
   * taken by a `takePending(dueBy)` before `retryAt`; its key's failure count grows by one.
   */
  restore(report: PendingReport, retryAt?: number, possiblyApplied?: boolean): MaybePromise<void>
  /** Planship rejected `report` for good (or it is not sent again): its units leave the store. */
  discard(report: PendingReport, reason?: DiscardReason): MaybePromise<void>
  /** Units pending or being sent (by this process, for a shared store). */
  pendingUnits(): MaybePromise<number>
  /**
   * Called once by `createMeter` on a store the user passed, with what the meter knows: the
   * clock, the bounds and where to log. A shared store needs them; the user passes only its client.
   */
  bind?(context: StoreContext): void
  /**
   * At the end of `close()`: what this process holds and nobody else will deliver, taken out of
   * the store. Defaults to taking and discarding everything pending. A shared store leaves the
   * fleet's usage where other replicas can deliver it.
   */
  takeUndelivered?(): MaybePromise<PendingReport[]>
  /** Fleet-wide delivery totals, as last read by a shared store. */
  fleetDeliveryStats?(): FleetDeliveryStats | undefined
  /** Called by `close()` last: stop timers. Must not close a client the user owns. */
  close?(): MaybePromise<void>
  /**
   * Reads Planship data through a copy the fleet shares: `load` (a Planship call) runs in one
   * process at a time, and a copy younger than `ttlMs` is used as it is, with the time it was
   * fetched. Without this method every process reads Planship for itself.
   */
  sharedRead?<V>(key: SharedReadKey, ttlMs: number, load: () => Promise<V>): Promise<SharedSnapshot<V>>
  /**
   * What admission would see for each of `request.limits`, reserving nothing (`status()`); the
   * reconciled view `reserve` checks. Without it, status counts the snapshot alone.
   */
  available?(request: ReserveRequest): MaybePromise<LimitRoom[]>
  /** Buckets of these metering ids the customer has usage in that Planship may not show yet. Optional. */
  bucketsOf?(customerId: string, meteringIds: readonly string[]): MaybePromise<string[]>
  /**
   * Tells every process sharing the store that the customer's Planship data changed at `at`
   * (the new snapshot's fetch time): a snapshot older than that is not to be decided from.
   */
  markRefreshed?(customerId: string, at: number): Promise<void>
  /**
   * Whether this process is the first of the fleet to claim `key` (a threshold alert), for
   * `ttlMs`. Without it, the meter dedupes in its own memory.
   */
  claimOnce?(customerId: string, key: string, ttlMs: number): Promise<boolean>
  /** Keys (customer × metering id × bucket) with units pending or being sent, for metrics. Optional. */
  pendingKeys?(): MaybePromise<number>
}

/** How many busy keys one background pass may send; see {@link UsageStore.takePending}. */
export interface ReportBudget {
  busy: number
  /** Clock time: a key with no usage since then is idle. */
  idleBefore: number
}

/** Which Planship data: a customer's entitlements, or its usage of one metering id. */
export interface SharedReadKey {
  customerId: string
  /** `'entitlements'` or `'usage:<meteringId>'`. */
  name: string
}

/** Planship data and when it was fetched (the fetch's start) and answered. */
export interface SharedSnapshot<V> {
  value: V
  fetchedAt: number
  receivedAt: number
}

/** What the meter hands a store it did not create (see {@link UsageStore.bind}). */
export interface StoreContext {
  clock: Clock
  /** How long acknowledged usage may stay invisible in Planship's numbers, in ms. */
  aggregationLagMs: number
  /** How old a snapshot can be and still be used, in ms (cache ttl + max stale). */
  maxSnapshotAgeMs: number
  maxCustomers: number
  maxPendingKeys: number
  delivery: 'at-least-once' | 'at-most-once'
  /** Budget of one call to Planship, in ms: a report POST never takes longer. */
  planshipTimeoutMs: number
  log: Log
  emit: EventSink | undefined
  /** Reports how long one call to a shared store took (`error` when it failed), for metrics. */
  recordCall?: ((operation: string, durationMs: number, error?: string) => void) | undefined
}

/** Delivery totals: of one process, or summed over every process sharing a store. */
export interface FleetDeliveryStats {
  /** Report POSTs Planship acknowledged, and their units. */
  reports: number
  reportedUnits: number
  /** Failed attempts that were scheduled again. */
  retries: number
  /** Units sent again after an attempt that may have been applied (at-least-once). */
  possiblyDuplicatedUnits: number
  /** Units not sent again after an attempt that may have been applied (at-most-once). */
  possiblyLostUnits: number
  /** Units Planship refused for good (400, 404, 422 …). */
  rejectedUnits: number
}

/** Why a report leaves the store without being acknowledged. */
export type DiscardReason = 'rejected' | 'possibly-lost' | 'undelivered'

/** What usage is reported under: one report per key per flush. */
export interface UsageKey {
  customerId: string
  meteringId: string
  bucket: string | undefined
}

/** A lever limiting a reservation, read from a cached entitlements snapshot. */
export interface LeverLimit {
  lever: string
  /** The remaining allowance the snapshot gives (for per-bucket levers, of the request's bucket). */
  remaining: number
  /** Metering ids known to feed the lever: local usage of each counts against it. */
  meteringIds: readonly string[]
  /** Only local usage of the same bucket counts (per-bucket levers). */
  perBucket: boolean
}

export interface ReserveRequest extends UsageKey {
  cost: number
  limits: readonly LeverLimit[]
  /** When the snapshot behind `limits` was fetched: usage acknowledged after (snapshotAt − aggregation lag) is not in it. */
  snapshotAt: number
  /**
   * When the snapshot's answer arrived: usage sent after it cannot be in it. Defaults to
   * `snapshotAt`.
   */
  receivedAt?: number
}

/** One limit as admission sees it now (see {@link UsageStore.available}). */
export interface LimitRoom {
  lever: string
  /** The snapshot's remaining allowance less `unseen`; below 0 when overdrawn. */
  left: number
  /** Usage reserved, pending or recently delivered that the snapshot does not contain. */
  unseen: number
}

export interface Reservation extends UsageKey {
  cost: number
}

/**
 * `local`: a shared store could not be reached and this process decided alone, from its own
 * memory and the same snapshot.
 */
export type ReserveResult =
  | {
      ok: true
      reservation: Reservation
      /** The limit with the least room once this reservation is made (for RateLimit headers); optional for a store. */
      least?: { lever: string; remaining: number }
      local?: true
      /** The customer's Planship data changed at this time (a refresh, on any replica); see `markRefreshed`. */
      refreshedAt?: number
    }
  | {
      ok: false
      lever: string
      /** Units left after local usage. */ remaining: number
      local?: true
      refreshedAt?: number
    }
  /** Too much usage is waiting to be delivered to take a new key: the request is refused. */
  | { ok: false; backlog: true; refreshedAt?: undefined }

export interface PendingReport extends UsageKey {
  usage: number
  /** Failed attempts in a row for this key before this one. */
  failures: number
  /** Clock time the report's POST started, set by the reporter: Planship cannot have it earlier. */
  sentAt?: number
}
