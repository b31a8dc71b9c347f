/**
 * planship-meter on Express (5, and 4): the same options and semantics as the Koa meter, with
 * callbacks that get `(req, res)` and the request's state in `res.locals.planship`.
 */
import { createHttpMeter, type MeterCore } from '../meter.js'
import type { HttpMeterOptions } from '../options.js'
import { type ConsumeOptions, createExpressAdapter, type ExpressArgs, type PlanshipHandler } from './middleware.js'
import type { FeatureOptions } from '../http/route.js'

/** Options of the Express `createMeter`: those of the Koa meter, with callbacks of `(req, res)`. */
export type ExpressMeterOptions = HttpMeterOptions<ExpressArgs>

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
  /**
   * The identified customer's `status()` as JSON (200), for a usage page: never metered, nothing
   * of another customer; 401 without a customer.
   */
  statusRoute(): PlanshipHandler
}

/**
 * Creates a meter for one Planship product, for Express. Throws a `TypeError` naming the option
 * when an option is invalid. `identify` is needed only to mount the middleware: without it,
 * `middleware()`, `consume()` and `requireFeature()` throw a `TypeError`.
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
  return createHttpMeter(options, createExpressAdapter)
}

// Everything framework-neutral (`planship-meter/core`); the `createMeter` above shadows its own.
export * from '../core/index.js'
export type { ConsumeOptions, ExpressArgs, FeatureOptions, PlanshipHandler }
export type { PlanshipLocals } from './state.js'
