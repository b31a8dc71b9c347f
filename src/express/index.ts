/**
 * planship-meter on Express (5, and 4): the same options and semantics as the Koa meter, with
 * callbacks that get `(req, res)` and the request's state in `res.locals.planship`.
 */
import { createCore, type MeterCore } from '../meter.js'
import type { MeterOptions } from '../options.js'
import { type ConsumeOptions, createExpressAdapter, type ExpressArgs, type PlanshipHandler } from './middleware.js'
import type { FeatureOptions } from '../http/route.js'

/** Options of the Express `createMeter`: those of the Koa meter, with callbacks of `(req, res)`. */
export type ExpressMeterOptions = MeterOptions<ExpressArgs>

/** What the Express `createMeter` returns. */
export interface ExpressMeter extends MeterCore {
  /** Identifies the customer of every request into `res.locals.planship.customerId`. Never denies. */
  middleware(): PlanshipHandler
  /**
   * Before the handler, checks every lever fed by `meteringId` has room for the cost and
   * reserves it; once the response is finished, reports the usage (or releases the reservation).
   */
  consume(meteringId: string, options?: ConsumeOptions): PlanshipHandler
  /** Lets the request through only when the customer's entitlement for `lever` is truthy. */
  requireFeature(lever: string, options?: FeatureOptions): PlanshipHandler
}

/**
 * Creates a meter for one Planship product, for Express. Throws a `TypeError` naming the option
 * when an option is invalid.
 *
 * @example
 * const planship = createMeter({
 *   productSlug: 'acme-api',
 *   planship: { clientId, clientSecret },
 *   identify: (req) => req.get('x-customer-id') || undefined,
 * })
 * app.use(planship.middleware())
 * app.post('/v1/renders', planship.consume('api-call'), handler)
 */
export function createMeter(options: ExpressMeterOptions): ExpressMeter {
  const { core, gate, config, log } = createCore(options)
  const express = createExpressAdapter({ identify: config.identify, onDenied: config.onDenied, gate, log })
  return { ...core, middleware: express.middleware, consume: express.consume, requireFeature: express.requireFeature }
}

export type { ConsumeOptions, ExpressArgs, FeatureOptions, PlanshipHandler }
export type { PlanshipLocals } from './state.js'
export type { CacheOptions, Clock, Denial, Logger, PlanshipConnectionOptions, ReportingOptions } from '../options.js'
export { PlanshipMeterError, type PlanshipMeterErrorCode } from '../errors.js'
export type { MeterEvent } from '../events.js'
export type { DecisionRecord, PlanshipRequestState } from '../http/state.js'
export type { Mode } from '../http/route.js'
export type { HeaderStyle } from '../http/headers.js'
export type { MeterCore } from '../meter.js'
export type { NeutralApi, ReportOptions, ReserveDecision, ReserveOptions } from '../neutral.js'
export type { MeteredReservation } from '../http/reservation.js'
export type { AbortPolicy } from '../http/response-end.js'
export type { DecisionSource } from '../enforcement/enforcer.js'
export type { UsageStore } from '../enforcement/store.js'
export { MemoryUsageStore } from '../enforcement/memory-store.js'
export type { CloseResult, DeliveryStats, FlushResult } from '../reporting/reporter.js'
