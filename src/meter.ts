import { Enforcer } from './enforcement/enforcer.js'
import { MemoryUsageStore } from './enforcement/memory-store.js'
import { ThresholdAlerts } from './enforcement/alerts.js'
import { LeverPeriods } from './enforcement/periods.js'
import { type CustomerStatus, customerStatus } from './enforcement/status.js'
import type { UsageStore } from './enforcement/store.js'
import { PlanshipMeterError } from './errors.js'
import { eventSink } from './events.js'
import { createGate, type Gate } from './http/gate.js'
import type { FeatureOptions } from './http/route.js'
import type { Log } from './log.js'
import { createNeutralApi, type NeutralApi } from './neutral.js'
import {
  type HttpMeterOptions,
  type Identify,
  type MeterCoreOptions,
  type ResolvedConfig,
  resolveConfig,
} from './options.js'
import { PlanshipClient, type PlanshipCallCounts } from './planship/client.js'
import { type CloseResult, type DeliveryStats, type FlushResult, Reporter } from './reporting/reporter.js'
import { createTelemetry, decisionSink, withTelemetry } from './telemetry/telemetry.js'

/** Connections to Planship at once: report POSTs (`reporting.maxConcurrency`) plus cold reads. */
const MAX_SOCKETS = 64

/** What every meter has, whatever the framework: delivery, lifecycle and the neutral API. */
export interface MeterCore extends NeutralApi {
  /** Sends all pending usage now; resolves when Planship acknowledged it, rejects with `FLUSH_INCOMPLETE` otherwise. */
  flush(): Promise<FlushResult>
  /**
   * Stops admitting metered requests (new ones get 503), waits for running ones and open
   * reservations to finish, flushes (retrying until `reporting.closeTimeoutMs`), then stops
   * timers. Resolves with the usage that could not be delivered, so the app can persist it.
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

/** The framework-neutral meter an adapter wraps, with what the adapter needs to build on it. */
export function createCore<A extends unknown[]>(
  options: HttpMeterOptions<A>,
): { core: MeterCore; gate: Gate; config: ResolvedConfig<A>; log: Log } {
  const config = resolveConfig(options)
  const { clock, log } = config
  const telemetry = createTelemetry() // undefined when @opentelemetry/api is not installed
  const emit = eventSink(withTelemetry(telemetry, config.onEvent))
  const client = new PlanshipClient({
    ...config.planship,
    productSlug: config.productSlug,
    fetch: config.fetch,
    maxSockets: MAX_SOCKETS,
    clock,
    instrument: telemetry?.client,
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
    recordCall: telemetry === undefined ? undefined : (...call) => telemetry.storeCall(...call),
  })
  const store: UsageStore =
    config.store ??
    new MemoryUsageStore({
      aggregationLagMs: config.cache.aggregationLagMs,
      maxSnapshotAgeMs: config.cache.ttlMs + config.cache.maxStaleMs,
      maxCustomers: config.cache.max,
      maxPendingKeys: config.reporting.maxPendingKeys,
      clock,
      // The customer bound: a forgotten customer's cached Planship data goes with it.
      forget: (customerId) => enforcer.forget(customerId),
    })
  const resets = new LeverPeriods({ client, clock, log })
  const period = (customerId: string, lever: string) => resets.current(customerId, lever)
  const alerts =
    config.alerts === undefined || emit === undefined
      ? undefined
      : new ThresholdAlerts({ ...config.alerts, max: config.cache.max, store, period, clock, emit, log })
  const observe = alerts === undefined ? undefined : alerts.observe.bind(alerts)
  const enforcer: Enforcer = new Enforcer({
    ...config.cache,
    client,
    store,
    failMode: config.failMode,
    clock,
    log,
    emit,
    observe,
  })
  const reporter = new Reporter({ ...config.reporting, client, store, clock, log, emit })
  telemetry?.observe({ store, breaker: enforcer.breaker, deliveryStats: () => reporter.stats() })
  const decided = decisionSink(telemetry, config.onEvent)
  const { mode, headers, onAbort } = config
  const gate = createGate({ enforcer, emit, decided, mode, headers, resets, clock, onAbort })
  let closed: Promise<CloseResult> | undefined
  const status = (customerId: string) => customerStatus({ enforcer, period, clock }, customerId)
  const neutral = createNeutralApi({ gate, enforcer, log, emit, closed: () => closed !== undefined, status })

  const core: MeterCore = {
    ...neutral,
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
        enforcer.seal()
        const result = await reporter.close(deadline)
        client.close()
        await store.close?.() // stops the store's timers; a client the user passed stays open
        await telemetry?.close()
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
  return { core, gate, config, log }
}

/**
 * Creates a meter for one Planship product without any framework: for queue workers, webhooks
 * and cron jobs, through `reserve`, `report`, `isEntitled`, `check`, `flush` and `close`. Its
 * types reference no web framework. Throws a `TypeError` naming the option when an option is
 * invalid. (HTTP meters: `planship-meter` for Koa, `planship-meter/express`.)
 *
 * @example
 * const planship = createMeter({ productSlug: 'acme-api', planship: { clientId, clientSecret } })
 * const reservation = await planship.reserve(customerId, 'render', { cost: 10 })
 */
export function createMeter(options: MeterCoreOptions): MeterCore {
  return createCore(options).core
}

/** What a framework adapter (Koa, Express) adds to a meter: handlers of type `H`, consume options `C`. */
export interface HttpAdapter<H, C, S = H> {
  middleware(): H
  consume(meteringId: string, options?: C): H
  requireFeature(lever: string, options?: FeatureOptions): H
  /** The identified customer's `status()` as JSON: a route's handler, of the framework's kind `S`. */
  statusRoute(): S
}

/** What a framework adapter is made from. */
export interface HttpAdapterConfig<A extends unknown[]> {
  identify: Identify<A>
  onDenied: HttpMeterOptions<A>['onDenied']
  gate: Gate
  log: Log
  /** The meter's `status()`, for `statusRoute()`. */
  status: (customerId: string) => Promise<CustomerStatus>
}

/**
 * An HTTP meter: the core, and the handlers of the adapter `adapt` makes from the meter's
 * `identify`. Mounting (`middleware()`, `consume()`, `requireFeature()`) on a meter without
 * `identify` throws a `TypeError` saying so, when the route is defined rather than on its first
 * request.
 */
export function createHttpMeter<A extends unknown[], H, C, S = H>(
  options: HttpMeterOptions<A>,
  adapt: (config: HttpAdapterConfig<A>) => HttpAdapter<H, C, S>,
): MeterCore & HttpAdapter<H, C, S> {
  const { core, gate, config, log } = createCore(options)
  const { identify, onDenied } = config
  const adapter = identify === undefined ? undefined : adapt({ identify, onDenied, gate, log, status: core.status })
  const mount = (mounting: string): HttpAdapter<H, C, S> => {
    if (adapter === undefined) {
      throw new TypeError(
        `planship-meter: ${mounting} needs the \`identify\` option of createMeter, a function returning the ` +
          "request's customer id; a meter without it serves only reserve(), report(), isEntitled(), flush() and close()",
      )
    }
    return adapter
  }
  return {
    ...core,
    middleware: () => mount('middleware()').middleware(),
    consume: (meteringId, consumeOptions) => mount('consume()').consume(meteringId, consumeOptions),
    requireFeature: (lever, featureOptions) => mount('requireFeature()').requireFeature(lever, featureOptions),
    statusRoute: () => mount('statusRoute()').statusRoute(),
  }
}
