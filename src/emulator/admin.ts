import type Router from '@koa/router'
import type { RouterContext, RouterMiddleware } from '@koa/router'
import { invalid, missing } from './api-error.js'
import { FaultInputError, parseFaultConfig, ruleWire, type ParsedFaultConfig } from './fault-config.js'
import type { EventFeed } from './event-feed.js'
import type { FaultSnapshot } from './faults.js'
import type { RouterClass } from './koa-layer.js'
import type { overview } from './overview.js'
import type { NewCustomer } from './subscribed-customer.js'
import {
  bodyObject,
  onlyKeys,
  optionalObject,
  optionalString,
  readJson,
  requiredString,
  type Body,
} from './validate.js'
import type { CustomerWire, MeteringRecordWire } from './wire.js'

/** What the admin routes can do; implemented by the running emulator. */
export interface AdminControls {
  requestCounts(): Record<string, number>
  reset(): void
  revokeTokens(): void
  advanceClock(ms: number): void
  now(): number
  setAggregationLag(ms: number): void
  setLatency(ms: number): void
  recordedUsage(filter: { customerId?: string; meteringId?: string; bucket?: string | null }): number
  meteringRecords(): readonly MeteringRecordWire[]
  setFaults(config: ParsedFaultConfig): void
  clearFaults(): void
  faults(): FaultSnapshot & { aggregationLagMs: number }
  faultCounts(): Record<string, number>
  /** Throws an `ApiError` (422 for an unknown plan or product, 409 for a taken alternative id). */
  createCustomer(input: NewCustomer): CustomerWire
  /** Catalog, customers' usage against limits and the latest records, for the console. */
  overview(): ReturnType<typeof overview>
  latencyMs(): number
}

/**
 * Test hooks outside the Planship API (`/_emulator/…`), without auth, so test suites in any
 * language can steer the emulator over HTTP. Never counted and never delayed by fault injection.
 */
export function createAdminRouter(Router: RouterClass, controls: AdminControls, feed: EventFeed): Router {
  const router = new Router({ prefix: '/_emulator' })
  // Open consoles refresh when something was changed through the admin routes.
  router.use(async (ctx, next) => {
    await next()
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD' && ctx.status < 400) {
      feed.publish('change', { method: ctx.method, path: ctx.path })
    }
  })
  const answer =
    (handler: (ctx: RouterContext) => unknown, status = 200): RouterMiddleware =>
    async (ctx) => {
      const body = await handler(ctx)
      ctx.status = status
      ctx.body = body
    }

  router.get(
    '/requests',
    answer(() => controls.requestCounts()),
  )
  router.post(
    '/reset',
    answer(async (ctx) => {
      await readBody(ctx, [], false)
      controls.reset()
      return {}
    }),
  )
  router.post(
    '/revoke-tokens',
    answer(async (ctx) => {
      await readBody(ctx, [], false)
      controls.revokeTokens()
      return {}
    }),
  )
  router.post(
    '/clock',
    answer(async (ctx) => {
      const body = await readBody(ctx, ['advance_ms'], true)
      if (body.advance_ms === undefined) throw missing(['body', 'advance_ms'])
      controls.advanceClock(nonNegative(body.advance_ms, 'advance_ms'))
      return { now: new Date(controls.now()).toISOString(), now_ms: controls.now() }
    }),
  )
  router.post(
    '/settings',
    answer(async (ctx) => {
      const body = await readBody(ctx, ['aggregation_lag_ms', 'latency_ms'], true)
      if (body.aggregation_lag_ms !== undefined) {
        controls.setAggregationLag(nonNegative(body.aggregation_lag_ms, 'aggregation_lag_ms'))
      }
      if (body.latency_ms !== undefined) controls.setLatency(nonNegative(body.latency_ms, 'latency_ms'))
      return {}
    }),
  )
  // A customer subscribed to a plan in one call (the API needs two, and a token).
  router.post(
    '/customers',
    answer(async (ctx) => {
      const body = await readBody(ctx, ['alternative_id', 'plan', 'product', 'name', 'email', 'metadata'], true)
      // Absent fields stay undefined, which every consumer reads as "use the default".
      const input: NewCustomer = {
        alternativeId: requiredString(body, 'alternative_id', 256),
        plan: optionalString(body, 'plan'),
        product: optionalString(body, 'product'),
        name: optionalString(body, 'name'),
        email: optionalString(body, 'email'),
        metadata: optionalObject(body, 'metadata'),
      }
      return controls.createCustomer(input)
    }, 201),
  )
  router.get(
    '/usage',
    answer((ctx) => {
      const filter: { customerId?: string; meteringId?: string; bucket?: string | null } = {}
      const { customer_id: customerId, metering_id: meteringId, bucket } = ctx.query
      if (typeof customerId === 'string') filter.customerId = customerId
      if (typeof meteringId === 'string') filter.meteringId = meteringId
      // Planship's own convention: unbucketed usage is keyed "null".
      if (typeof bucket === 'string') filter.bucket = bucket === 'null' ? null : bucket
      return { usage: controls.recordedUsage(filter) }
    }),
  )
  router.get(
    '/records',
    answer(() => controls.meteringRecords()),
  )

  // Fault injection: PUT applies the fields present (`rules` replaces the list), DELETE clears.
  const faults = () => {
    const { seed, rules, down, aggregationLagMs } = controls.faults()
    return {
      config: { seed, rules: rules.map(ruleWire), down, aggregation_lag_ms: aggregationLagMs },
      counts: controls.faultCounts(),
    }
  }
  router.get('/faults', answer(faults))

  // The console: everything it shows in one read, and a live stream of records and changes.
  router.get(
    '/state',
    answer(() => ({
      ...controls.overview(),
      settings: { latency_ms: controls.latencyMs(), aggregation_lag_ms: controls.faults().aggregationLagMs },
      faults: faults(),
    })),
  )
  router.get('/events', (ctx) => feed.open(ctx))
  router.put(
    '/faults',
    answer(async (ctx) => {
      const body = bodyObject(await readJson(ctx), true)
      let config: ParsedFaultConfig
      try {
        config = parseFaultConfig(body, 'snake')
      } catch (error) {
        if (error instanceof FaultInputError) throw invalid(['body', ...error.path], error.problem, error.type)
        throw error
      }
      controls.setFaults(config)
      return faults()
    }),
  )
  router.delete(
    '/faults',
    answer(() => {
      controls.clearFaults()
      return faults()
    }),
  )
  return router
}

/** The JSON body of an admin request, refusing keys it does not know (422 naming the key). */
async function readBody(ctx: RouterContext, allowed: readonly string[], required: boolean): Promise<Body> {
  return onlyKeys(bodyObject(await readJson(ctx), required), allowed)
}

function nonNegative(value: unknown, key: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw invalid(
      ['body', key],
      'ensure this value is a number greater than or equal to 0',
      'value_error.number.not_ge',
    )
  }
  return value
}
