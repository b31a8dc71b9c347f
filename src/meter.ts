import type { Middleware } from 'koa'
import { Enforcer } from './enforcement/enforcer.js'
import { MemoryUsageStore } from './enforcement/memory-store.js'
import type { UsageStore } from './enforcement/store.js'
import { PlanshipMeterError } from './errors.js'
import { eventSink } from './events.js'
import { type ConsumeOptions, createKoaAdapter, type FeatureOptions } from './koa/middleware.js'
import type { PlanshipState } from './koa/state.js'
import { type MeterOptions, resolveConfig } from './options.js'
import { PlanshipClient, type PlanshipCallCounts } from './planship/client.js'
import { type CloseResult, type DeliveryStats, type FlushResult, Reporter } from './reporting/reporter.js'

/** Connections to Planship at once: report POSTs (`reporting.maxConcurrency`) plus cold reads. */
const MAX_SOCKETS = 64

/** What {@link createMeter} returns. */
export interface Meter {
  /** Identifies the customer of every request into `ctx.state.planship.customerId`. Never denies. */
  middleware(): Middleware<PlanshipState>
  /**
   * Before the handler, checks every lever fed by `meteringId` has room for the cost and
   * reserves it; after the response, reports the usage (or releases the reservation).
   */
  consume(meteringId: string, options?: ConsumeOptions): Middleware<PlanshipState>
  /** Lets the request through only when the customer's entitlement for `lever` is truthy. */
  requireFeature(lever: string, options?: FeatureOptions): Middleware<PlanshipState>
  /** Sends all pending usage now; resolves when Planship acknowledged it, rejects with `FLUSH_INCOMPLETE` otherwise. */
  flush(): Promise<FlushResult>
  /**
   * Stops admitting metered requests (new ones get 503), waits for running ones to finish,
   * flushes (retrying until `reporting.closeTimeoutMs`), then stops timers. Resolves with the
   * usage that could not be delivered, so the app can persist it.
   */
  close(): Promise<CloseResult>
  /**
   * For start-up and health checks: gets a token and reads the product. Rejects with a
   * `PlanshipMeterError` saying what is wrong: `PLANSHIP_AUTH_FAILED` (credentials),
   * `PLANSHIP_PRODUCT_NOT_FOUND` (`productSlug`), `PLANSHIP_UNREACHABLE` or `PLANSHIP_TIMEOUT`.
   */
  check(): Promise<void>
  /** Upstream calls made so far, by kind. */
  planshipCalls(): PlanshipCallCounts
  /** Delivery totals so far: reports, retries, units possibly duplicated or lost, refused. */
  deliveryStats(): DeliveryStats
}

/**
 * Creates a meter for one Planship product. Throws a `TypeError` naming the option when an
 * option is invalid.
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
  const config = resolveConfig(options)
  const { clock, log } = config
  const emit = eventSink(config.onEvent)
  const client = new PlanshipClient({
    ...config.planship,
    productSlug: config.productSlug,
    fetch: config.fetch,
    maxSockets: MAX_SOCKETS,
    clock,
  })
  config.store?.bind?.({
    clock,
    aggregationLagMs: config.cache.aggregationLagMs,
    maxSnapshotAgeMs: config.cache.ttlMs + config.cache.maxStaleMs,
    maxCustomers: config.cache.max,
    maxPendingKeys: config.reporting.maxPendingKeys,
    delivery: config.reporting.delivery,
    planshipTimeoutMs: config.planship.timeoutMs,
    log,
    emit,
  })
  const store: UsageStore =
    config.store ??
    new MemoryUsageStore({
      aggregationLagMs: config.cache.aggregationLagMs,
      maxSnapshotAgeMs: config.cache.ttlMs + config.cache.maxStaleMs,
      maxCustomers: config.cache.max,
      maxPendingKeys: config.reporting.maxPendingKeys,
      clock,
    })
  const enforcer = new Enforcer({ ...config.cache, client, store, failMode: config.failMode, clock, log, emit })
  const reporter = new Reporter({ ...config.reporting, client, store, clock, log, emit })
  const koa = createKoaAdapter({ identify: config.identify, onDenied: config.onDenied, enforcer, log, emit })
  let closed: Promise<CloseResult> | undefined

  return {
    middleware: koa.middleware,
    consume: koa.consume,
    requireFeature: koa.requireFeature,
    flush: () =>
      closed === undefined
        ? reporter.flush()
        : Promise.reject(new PlanshipMeterError('METER_CLOSED', 'flush() was called after close()')),
    close: () =>
      (closed ??= (async () => {
        // Shutdown is bounded in real time, whatever clock the data ages are measured with.
        const deadline = performance.now() + config.reporting.closeTimeoutMs
        enforcer.stop()
        await enforcer.drain(deadline) // requests still running commit their usage first
        const result = await reporter.close(deadline)
        client.close()
        await store.close?.() // stops the store's timers; a client the user passed stays open
        return result
      })()),
    check: async () => {
      await client.getProduct()
    },
    planshipCalls: () => client.callCounts(),
    deliveryStats: () => {
      const stats: DeliveryStats = { ...reporter.stats(), backlogRefusals: enforcer.backlogRefusals }
      const fleet = store.fleetDeliveryStats?.()
      if (fleet !== undefined) stats.fleet = fleet
      return stats
    },
  }
}
