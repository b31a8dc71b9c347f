/**
 * planship-meter on Fastify 5: the same options and semantics as the Koa and Express meters,
 * with callbacks that get `(request, reply)` and the request's state in `request.planship`.
 */
import type { FastifyInstance } from 'fastify'
import { createHttpMeter, type MeterCore } from '../meter.js'
import type { HttpMeterOptions } from '../options.js'
import type { PlanshipRequestState } from '../http/state.js'
import {
  type ConsumeOptions,
  createFastifyAdapter,
  type FastifyArgs,
  type PlanshipHook,
  type PlanshipStatusHandler,
} from './hooks.js'
import type { FeatureOptions } from '../http/route.js'

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * What planship-meter knows of the request: set by the hook of `planship.plugin` (before
     * the route's own `preHandler` hooks) or by `consume()`/`requireFeature()`; `null` before,
     * and on routes the meter does not see.
     */
    planship: PlanshipRequestState | null
  }
}

/** Options of the Fastify `createMeter`: those of the Koa meter, with callbacks of `(request, reply)`. */
export type FastifyMeterOptions = HttpMeterOptions<FastifyArgs>

/**
 * The meter as a Fastify plugin: `await app.register(planship.plugin)`. Its decorator and hook
 * escape encapsulation (as `fastify-plugin` does), so they apply to the context it is
 * registered in and every context below. Registering it throws the meter's `TypeError` when the
 * meter has no `identify`.
 */
export interface PlanshipPlugin {
  (fastify: FastifyInstance, options: Record<never, never>): Promise<void>
}

/** What the Fastify `createMeter` returns. */
export interface FastifyMeter extends MeterCore {
  /**
   * Declares `request.planship` and identifies every request into it, in an app-wide
   * `preHandler` hook: register it after your authentication. Never denies. Registering it
   * does not close the meter with the app: add `app.addHook('onClose', () => planship.close())`.
   */
  readonly plugin: PlanshipPlugin
  /**
   * A `preHandler` hook: checks every lever fed by `meteringId` has room for the cost and
   * reserves it; once the response is over, reports the usage (or releases the reservation).
   */
  consume(meteringId: string, options?: ConsumeOptions): PlanshipHook
  /** A `preHandler` hook letting the request through only when the customer's entitlement for `lever` is truthy. */
  requireFeature(lever: string, options?: FeatureOptions): PlanshipHook
  /**
   * A route's handler answering the identified customer's `status()` as JSON (200), for a usage
   * page: never metered, nothing of another customer; 401 without a customer.
   * `app.get('/v1/usage', planship.statusRoute())`
   */
  statusRoute(): PlanshipStatusHandler
}

/** `fastify-plugin`'s marks, set by hand: planship-meter has no runtime dependency on it. */
function asPlugin(register: (fastify: FastifyInstance) => void): PlanshipPlugin {
  const plugin = Object.assign(async (fastify: FastifyInstance) => register(fastify), {
    // Registered in the caller's context, not a child one: the decorator and hook reach its routes.
    [Symbol.for('skip-override')]: true,
    [Symbol.for('fastify.display-name')]: 'planship-meter',
    [Symbol.for('plugin-meta')]: { fastify: '5.x', name: 'planship-meter' },
  })
  return plugin
}

/**
 * Creates a meter for one Planship product, for Fastify. Throws a `TypeError` naming the option
 * when an option is invalid. `identify` is needed only for requests: without it, registering
 * `plugin`, `consume()` and `requireFeature()` throw a `TypeError`.
 *
 * @example
 * const planship = createMeter({
 *   productSlug: 'acme-api',
 *   planship: { clientId, clientSecret },
 *   identify: (request) => request.headers['x-customer-id'] as string | undefined,
 * })
 * await app.register(planship.plugin)
 * app.post('/v1/renders', { preHandler: planship.consume('api-call') }, handler)
 */
export function createMeter(options: FastifyMeterOptions): FastifyMeter {
  const { middleware, ...meter } = createHttpMeter(options, createFastifyAdapter)
  const plugin = asPlugin((fastify) => {
    const identify = middleware() // the meter's TypeError when it has no `identify`
    // Declared up front, so every request object has the same shape; once, if registered twice.
    if (!fastify.hasRequestDecorator('planship')) fastify.decorateRequest('planship', null)
    fastify.addHook('preHandler', identify)
  })
  return { ...meter, plugin }
}

// Everything framework-neutral (`planship-meter/core`); the `createMeter` above shadows its own.
export * from '../core/index.js'
export type { ConsumeOptions, FastifyArgs, FeatureOptions, PlanshipHook, PlanshipStatusHandler }
