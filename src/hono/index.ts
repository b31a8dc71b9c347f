/**
 * planship-meter on Hono 4: the same options and semantics as the Koa meter, with callbacks that
 * get `c` and the request's state in `c.get('planship')` (`c.var.planship`). Served by
 * @hono/node-server, a response is settled when the Node response is over; on other runtimes
 * (and `app.request()`), when its body stream ended or was cancelled.
 */
import { createHttpMeter, type MeterCore } from '../meter.js'
import type { HttpMeterOptions } from '../options.js'
import type { FeatureOptions } from '../http/route.js'
import {
  type ConsumeOptions,
  createHonoAdapter,
  type HonoAdapterConfig,
  type HonoArgs,
  type HonoOnDenied,
  type PlanshipMiddleware,
  type PlanshipStatusHandler,
} from './middleware.js'
import type { PlanshipVariables } from './state.js'

/** Options of the Hono `createMeter`: those of the Koa meter, with callbacks of `(c)`. */
export interface HonoMeterOptions extends Omit<HttpMeterOptions<HonoArgs>, 'onDenied'> {
  /**
   * Answers a denied request instead of the default JSON body: returns the Response to send.
   * The handler never runs after a denial. The denial's status and headers are set on `c`
   * before it is called, so `c.json(…)`/`c.text(…)` keep them. A call that returns no Response
   * gets the default body. Defaults to a JSON body `{ error: { code, message, lever? } }`.
   */
  onDenied?: HonoOnDenied | undefined
}

/** What the Hono `createMeter` returns. */
export interface HonoMeter extends MeterCore {
  /** Identifies the customer of every request into `c.get('planship').customerId`. Never denies. */
  middleware(): PlanshipMiddleware
  /**
   * Before the handler, checks every lever fed by `meteringId` has room for the cost and
   * reserves it; once the response is over (its body sent, or its client gone), reports the
   * usage (or releases the reservation).
   */
  consume(meteringId: string, options?: ConsumeOptions): PlanshipMiddleware
  /** Lets the request through only when the customer's entitlement for `lever` is truthy. */
  requireFeature(lever: string, options?: FeatureOptions): PlanshipMiddleware
  /**
   * A route's handler answering the identified customer's `status()` as JSON (200), for a usage
   * page: never metered, nothing of another customer; 401 without a customer.
   * `app.get('/v1/usage', planship.statusRoute())`
   */
  statusRoute(): PlanshipStatusHandler
}

/**
 * Creates a meter for one Planship product, for Hono. Throws a `TypeError` naming the option
 * when an option is invalid. `identify` is needed only to mount the middleware: without it,
 * `middleware()`, `consume()` and `requireFeature()` throw a `TypeError`.
 *
 * @example
 * const planship = createMeter({
 *   productSlug: 'acme-api',
 *   planship: { clientId, clientSecret },
 *   identify: (c) => c.req.header('x-customer-id') || undefined,
 * })
 * app.use(planship.middleware())
 * app.post('/v1/renders', planship.consume('api-call'), (c) => c.json({ ok: true }))
 */
export function createMeter(options: HonoMeterOptions): HonoMeter {
  // The shared options type has every framework's onDenied write its answer (void); Hono's
  // returns the Response. It is validated as a function like the others, and read back typed.
  return createHttpMeter(options as HttpMeterOptions<HonoArgs>, (config) =>
    createHonoAdapter(config as HonoAdapterConfig),
  )
}

// Everything framework-neutral (`planship-meter/core`); the `createMeter` above shadows its own.
export * from '../core/index.js'
export type {
  ConsumeOptions,
  FeatureOptions,
  HonoArgs,
  HonoOnDenied,
  PlanshipMiddleware,
  PlanshipStatusHandler,
  PlanshipVariables,
}
