/**
 * planship-meter on Koa 3 (the package's root entry): `ctx` for every callback, the request's
 * state in `ctx.state.planship`.
 */
import type { Context, Middleware } from 'koa'
import { createHttpMeter, type MeterCore } from '../meter.js'
import type { HttpMeterOptions } from '../options.js'
import { type ConsumeOptions, createKoaAdapter, type FeatureOptions } from './middleware.js'
import type { PlanshipState } from './state.js'

/**
 * Options of the Koa `createMeter`. `A` is what callbacks get; the Koa meter hands them `[ctx]`.
 * (`HttpMeterOptions` is the same for any framework's arguments.)
 */
export type MeterOptions<A extends unknown[] = [ctx: Context]> = HttpMeterOptions<A>

/** What {@link createMeter} returns. */
export interface Meter extends MeterCore {
  /** Identifies the customer of every request into `ctx.state.planship.customerId`. Never denies. */
  middleware(): Middleware<PlanshipState>
  /**
   * Before the handler, checks every lever fed by `meteringId` has room for the cost and
   * reserves it; after the response, reports the usage (or releases the reservation).
   */
  consume(meteringId: string, options?: ConsumeOptions): Middleware<PlanshipState>
  /** Lets the request through only when the customer's entitlement for `lever` is truthy. */
  requireFeature(lever: string, options?: FeatureOptions): Middleware<PlanshipState>
  /**
   * The identified customer's `status()` as JSON (200), for a usage page: never metered, nothing
   * of another customer; 401 without a customer. Mount it after `middleware()` or on its own.
   */
  statusRoute(): Middleware<PlanshipState>
}

/**
 * Creates a meter for one Planship product, for Koa. Throws a `TypeError` naming the option
 * when an option is invalid. `identify` is needed only to mount the middleware: without it,
 * `middleware()`, `consume()` and `requireFeature()` throw a `TypeError`. (On Express:
 * `createMeter` from `planship-meter/express`; without any framework: `planship-meter/core`.)
 *
 * @example
 * const planship = createMeter({
 *   productSlug: 'acme-api',
 *   planship: { clientId, clientSecret },
 *   identify: (ctx) => ctx.get('x-customer-id') || undefined,
 * })
 * app.use(planship.middleware())
 * router.post('/v1/renders', planship.consume('api-call'), handler)
 */
export function createMeter(options: MeterOptions): Meter {
  return createHttpMeter(options, createKoaAdapter)
}

export type { ConsumeOptions, FeatureOptions, PlanshipState }
