import type { Enforcer } from './enforcement/enforcer.js'
import type { CustomerStatus } from './enforcement/status.js'
import { isPromiseLike, type MaybePromise, type Reservation } from './enforcement/store.js'
import { describe } from './enforcement/enforcer.js'
import { PlanshipMeterError } from './errors.js'
import type { EventSink } from './events.js'
import type { Gate } from './http/gate.js'
import { type MeteredReservation, ReservationHold } from './http/reservation.js'
import { isUnits, type Mode, validateMode } from './http/route.js'
import type { Log } from './log.js'
import type { Denial } from './types.js'
import { pathSegmentProblem } from './planship/ids.js'

/** What `reserve()` resolves to: admitted with its reservation to settle once, or denied. */
export type ReserveDecision =
  | (MeteredReservation & {
      allowed: true
      /**
       * The work is done: reports `usage` (defaults to the reserved cost) instead of the
       * reservation. A second call, or a call after `release()`, does nothing.
       */
      commit(usage?: number): Promise<void>
      /** The work did not happen: returns the reservation. A second call, or one after `commit()`, does nothing. */
      release(): Promise<void>
    })
  | { allowed: false; denial: Denial }

/** Options of `reserve()`. */
export interface ReserveOptions {
  /** Units to reserve. Defaults to `1`. */
  cost?: number
  /** Bucket the usage is reported under. Defaults to none. */
  bucket?: string
  /** Overrides the meter's `mode` for this call. Defaults to the meter's. */
  mode?: Mode
}

/** Options of `report()`. */
export interface ReportOptions {
  /** Bucket the usage is reported under. Defaults to none. */
  bucket?: string
}

/** The framework-neutral API of a meter, for work outside a request (queue workers, webhooks). */
export interface NeutralApi {
  /**
   * Checks every lever fed by `meteringId` has room for `cost` and reserves it, as `consume()`
   * does for a request. Throws a `TypeError` for an id that cannot be sent to Planship or a bad
   * cost. Settle an admitted reservation with `commit()` or `release()`; `close()` waits for it.
   */
  reserve(customerId: string, meteringId: string, options?: ReserveOptions): Promise<ReserveDecision>
  /** Whether the customer's entitlement for `lever` is truthy, as `requireFeature()` decides it. */
  isEntitled(customerId: string, lever: string): Promise<boolean>
  /**
   * Enqueues `usage` units without enforcement; they are aggregated and delivered like the
   * rest. Throws a `TypeError` on bad input, a `PlanshipMeterError` (`METER_CLOSED`,
   * `USAGE_BACKLOG_FULL`) when the usage cannot be kept.
   */
  report(customerId: string, meteringId: string, usage: number, options?: ReportOptions): void
  /**
   * The customer's quotas and features as the meter decides them now, for a dashboard: each
   * metered lever's `limit`, `used` and `remaining` (the largest cost admitted now; `null` when
   * unlimited), `resetsAt`/`windowSeconds` when known, each feature's `entitled`. Counts usage
   * reserved and not yet visible in Planship; consumes nothing. Warm, it makes no network call.
   * Throws a `TypeError` for an id that cannot be sent to Planship; rejects with a
   * `PlanshipMeterError` when Planship cannot be read and nothing is cached.
   */
  status(customerId: string): Promise<CustomerStatus>
  /**
   * After a plan change: drops the customer's cached entitlements and usage and reads Planship
   * again before resolving. With a shared store (Redis), every replica's next decision uses the
   * new data. Throws a `TypeError` for a bad id; rejects when Planship cannot be read.
   */
  refresh(customerId: string): Promise<void>
}

export interface NeutralConfig {
  gate: Gate
  enforcer: Enforcer
  log: Log
  emit: EventSink | undefined
  closed: () => boolean
  status: (customerId: string) => Promise<CustomerStatus>
}

function checkId(value: unknown, what: string): string {
  const problem = pathSegmentProblem(value)
  if (problem !== undefined) throw new TypeError(`planship-meter: ${what} ${problem}; it cannot be sent to Planship`)
  return value as string
}

function checkUnits(value: unknown, what: string): number {
  if (!isUnits(value)) throw new TypeError(`planship-meter: ${what} must be a non-negative integer`)
  return value
}

function checkBucket(value: unknown): string | undefined {
  if (value !== undefined && (typeof value !== 'string' || value.length === 0)) {
    throw new TypeError('planship-meter: option `bucket` must be a non-empty string')
  }
  return value
}

const settled = (value: MaybePromise<void>): Promise<void> =>
  isPromiseLike(value) ? Promise.resolve(value) : Promise.resolve()

export function createNeutralApi(config: NeutralConfig): NeutralApi {
  const { gate, enforcer } = config

  /**
   * Commit and release, each at most once in all: a retried worker step cannot count twice.
   * `extend()` holds more while the work runs, until it is settled.
   */
  function handle(
    reservation: Reservation | undefined,
    mode: Mode | undefined,
  ): Extract<ReserveDecision, { allowed: true }> {
    const hold = new ReservationHold(gate, reservation, { mode })
    const settle = (usage: number | undefined): Promise<void> => settled(hold.settle(usage))
    return {
      allowed: true,
      get reserved() {
        return hold.reserved
      },
      extend: (units) => hold.extend(units),
      commit: async (usage) => {
        const units = checkUnits(usage ?? hold.reserved, 'commit(usage)')
        if (hold.open && reservation !== undefined && units > 0 && enforcer.sealed) {
          await settle(undefined)
          throw new PlanshipMeterError(
            'METER_CLOSED',
            'commit() came after close() finished: the usage was not recorded',
          )
        }
        return settle(units)
      },
      release: () => settle(undefined),
    }
  }

  return {
    async reserve(customerId, meteringId, options = {}) {
      checkId(customerId, 'the customer id')
      checkId(meteringId, 'the metering id')
      const cost = checkUnits(options.cost ?? 1, 'option `cost`')
      const bucket = checkBucket(options.bucket)
      const mode = validateMode(options.mode)
      const verdict = await gate.consume(undefined, customerId, { meteringId, bucket, cost, mode })
      return verdict.allowed ? handle(verdict.reservation, mode) : { allowed: false, denial: verdict.denial }
    },

    async isEntitled(customerId, lever) {
      checkId(customerId, 'the customer id')
      if (typeof lever !== 'string' || lever.length === 0) {
        throw new TypeError('planship-meter: isEntitled(customerId, lever) needs a non-empty lever slug')
      }
      return (await gate.requireFeature(undefined, customerId, lever, {})).allowed
    },

    async status(customerId) {
      return config.status(checkId(customerId, 'the customer id'))
    },

    async refresh(customerId) {
      return enforcer.refresh(checkId(customerId, 'the customer id'))
    },

    report(customerId, meteringId, usage, options = {}) {
      checkId(customerId, 'the customer id')
      checkId(meteringId, 'the metering id')
      checkUnits(usage, 'report(usage)')
      const bucket = checkBucket(options.bucket)
      if (config.closed()) throw new PlanshipMeterError('METER_CLOSED', 'report() was called after close()')
      if (usage === 0) return
      const reserving = enforcer.reserveUnchecked({ customerId, meteringId, bucket }, usage)
      const commit = (reservation: Reservation | undefined): MaybePromise<void> => {
        if (reservation === undefined)
          throw new PlanshipMeterError('USAGE_BACKLOG_FULL', 'too much usage is waiting to be reported to Planship')
        return enforcer.commit(reservation, usage)
      }
      // A shared store may answer later: the caller has moved on, so a failure can only be told.
      const told = (error: unknown) => {
        const message = 'report() could not enqueue usage'
        config.log.error(message, { error: describe(error) })
        config.emit?.({ type: 'error', message, error: describe(error) })
      }
      const committing = isPromiseLike(reserving) ? Promise.resolve(reserving).then(commit) : commit(reserving)
      if (isPromiseLike(committing)) Promise.resolve(committing).catch(told)
    },
  }
}
