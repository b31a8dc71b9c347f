import type { DecisionSource } from '../enforcement/enforcer.js'
import type { MeteredReservation } from './reservation.js'

/**
 * One decision taken for a request, in the order they were taken. Admissions share one frozen
 * record per metering id (or lever) and source: read them, do not change them.
 */
export interface DecisionRecord {
  readonly kind: 'consume' | 'feature'
  /** The metering id (consume) or lever (feature) checked. */
  readonly subject: string
  readonly allowed: boolean
  /** Fresh or stale cached data, or no data and `failMode` decided. */
  readonly source: DecisionSource
  /** The lever that denied the request, when one did. */
  readonly lever?: string
  /** Shadow mode: `allowed` is what enforcement would have decided; the request went through. */
  readonly shadow?: true
}

/** What planship-meter keeps for a request: `ctx.state.planship` on Koa, `res.locals.planship` on Express. */
export interface PlanshipRequestState {
  /** The identified customer, `undefined` when `identify` found none. */
  customerId: string | undefined
  decisions: DecisionRecord[]
  /**
   * The running reservation of each `consume()` route the request passed, by metering id: how
   * many units it holds, and `extend(units)` to hold more while a response streams.
   */
  reservations: Record<string, MeteredReservation>
}

/** A request's state once identified. */
export function requestState(customerId: string | undefined): PlanshipRequestState {
  return { customerId, decisions: [], reservations: {} }
}
