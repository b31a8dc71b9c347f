import type { UsageStore } from './enforcement/store.js'
import type { MeterEvent } from './events.js'
import type { HeaderStyle } from './http/headers.js'
import type { AbortPolicy } from './http/response-end.js'
import { type Mode, validateMode, validateOnAbort } from './http/route.js'
import { pathSegmentProblem } from './planship/ids.js'
import { integerOption, invalidOption } from './option-checks.js'
import { createLog, type Log, type LoggerStyle } from './log.js'
import type { Clock, Denial, Logger } from './types.js'

export type { Clock, Denial, Logger }

/** How to reach Planship. */
export interface PlanshipConnectionOptions {
  /** API base URL, with or without a trailing slash. Defaults to `https://api.planship.io`. */
  baseUrl?: string | undefined
  /** OAuth2 client id of your Planship organization. Required. */
  clientId: string
  /** OAuth2 client secret. Required. Never logged or put in an error message. */
  clientSecret: string
  /** Budget of one call to Planship (token, read or report), in ms. Defaults to `5000`. */
  timeoutMs?: number
  /**
   * Largest answer body read from Planship, in bytes. A larger answer is an error (never cached),
   * so a broken or hostile upstream cannot fill the heap. Defaults to `1048576` (1 MiB).
   */
  maxResponseBytes?: number
  /**
   * How the credentials are put in the `Authorization: Basic` header of the token request.
   * `'basic-raw'` sends `base64(id:secret)` as Planship's own SDKs do; `'basic-encoded'`
   * URL-encodes id and secret first (RFC 6749 §2.3.1). Defaults to `'basic-raw'`.
   */
  clientAuth?: 'basic-raw' | 'basic-encoded'
}

/** How Planship data (entitlements, metering-id usage) is cached. */
export interface CacheOptions {
  /** How long fetched data counts as fresh, in ms. Defaults to `30000`. */
  ttlMs?: number
  /**
   * How long past `ttlMs` data may still be served while it is being refreshed or while
   * Planship fails, in ms. After that, `failMode` decides. Defaults to `300000` (5 minutes).
   */
  maxStaleMs?: number
  /** Most customers whose entitlements are kept. Defaults to `10000`. */
  max?: number
  /**
   * How long after Planship acknowledged a usage report its units may still be missing from
   * Planship's own numbers (Planship aggregates asynchronously), in ms. Reported units keep
   * counting locally against data fetched before this lag has passed. Defaults to `5000`.
   */
  aggregationLagMs?: number
}

/** How consumed usage is sent to Planship. */
export interface ReportingOptions {
  /** Interval between background flushes, in ms. Defaults to `1000`. */
  flushIntervalMs?: number
  /**
   * Most report POSTs in flight at once. Under load this also paces reporting: with 1 000 active
   * customers, 4 POSTs in flight and 20 ms to Planship, each key is sent every ~5 s instead of
   * every second, and the app spends its CPU on requests. Defaults to `4`.
   */
  maxConcurrency?: number
  /**
   * The report budget: most report POSTs per second that background flushes spend on busy keys
   * (customer × metering id × bucket still getting usage), however many are active. Planship has
   * no batch endpoint, so each key costs one POST (~85 µs of the app's CPU); past the budget, busy
   * keys wait longer and merge more usage, longest-waiting first. Idle keys (no usage for a flush
   * interval) go out regardless: waiting would merge nothing and only hold memory. Pending units
   * keep counting locally, so quotas stay exact in one process; across replicas without a shared
   * store the overshoot bound grows with the wait. `flush()` and `close()` ignore it. Defaults to
   * `50` (under 1 % of a core).
   */
  maxPostsPerSecond?: number
  /**
   * Most customer × metering id × bucket keys with usage waiting for delivery. Aggregation keeps
   * the backlog small even in a long outage; past this bound a request that would add a key is
   * refused with 503 (its usage could not be kept), never dropped silently. Defaults to `100000`.
   */
  maxPendingKeys?: number
  /**
   * Planship's usage API has no idempotency key: a report that timed out or got a 5xx may have
   * been applied. `'at-least-once'` sends it again (never under-bills; the units are counted as
   * possibly duplicated); `'at-most-once'` does not (never double-bills; counted as possibly
   * lost). Defaults to `'at-least-once'`.
   */
  delivery?: 'at-least-once' | 'at-most-once'
  /** How long `close()` keeps retrying pending reports before giving up, in ms. Defaults to `10000`. */
  closeTimeoutMs?: number
}

/** Threshold alerts: `onEvent` gets a `threshold` event when a customer's usage of a lever reaches a fraction of its limit. */
export interface AlertOptions {
  /**
   * Fractions of a metered lever's limit, each in (0, 1]: `[0.8, 1]` alerts at 80 % and at
   * 100 %. Each fires once per customer × lever × period (the subscription period, or the rolling
   * window), counting reserved and reported units; with a shared store, once for the whole fleet.
   * Required when `alerts` is given.
   */
  thresholds: readonly number[]
}

/**
 * Options every meter has, whatever the framework: what `createMeter` of `planship-meter/core`
 * takes (a worker's meter, used through `reserve`, `report`, `isEntitled`, `flush`, `close`).
 */
export interface MeterCoreOptions {
  /** Slug of the Planship product whose plans are sold. Required. */
  productSlug: string
  /** Planship connection. Required. */
  planship: PlanshipConnectionOptions
  cache?: CacheOptions
  reporting?: ReportingOptions
  /**
   * What to do when no usable Planship data exists (Planship unreachable and nothing cached
   * younger than `ttlMs + maxStaleMs`): `'open'` admits the request (its usage is still
   * reported), `'closed'` answers 503 `planship_unavailable`. Defaults to `'open'`.
   */
  failMode?: 'open' | 'closed'
  /**
   * `'shadow'` decides, records and reports as usual but never denies: what would have been
   * denied goes through, its decision records and events say `shadow: true`. How to roll quotas
   * out safely. A route's `mode` option overrides it. Defaults to `'enforce'`.
   */
  mode?: Mode
  /** Defaults to a logger that writes warnings and errors to the console. */
  logger?: Logger
  /**
   * The argument order of `logger`: `'message-first'` calls `warn(message, fields)`,
   * `'fields-first'` calls `warn(fields, message)` as pino and bunyan expect. Defaults to
   * `'fields-first'` for a pino or bunyan logger, else `'message-first'`.
   */
  loggerStyle?: LoggerStyle
  /**
   * Receives every decision, denial, flush, retry, drop and error, typed, for metrics. A
   * listener that throws is ignored. Defaults to none.
   */
  onEvent?: (event: MeterEvent) => void
  /**
   * A fetch for every Planship call (tests, proxies, instrumentation). Defaults to undici's
   * keep-alive connection pool, which costs far less CPU per call than the global fetch.
   */
  fetch?: typeof fetch
  /** Defaults to `Date`. */
  clock?: Clock
  /** Where reservations and pending usage live. Defaults to an in-memory store. */
  store?: UsageStore
  /** Threshold alerts, as `threshold` events to `onEvent`. Defaults to none. */
  alerts?: AlertOptions
}

/** The `identify` option: the customer id of a request, from the framework's arguments `A`. */
export type Identify<A extends unknown[]> = (...args: A) => string | undefined | Promise<string | undefined>

/**
 * Options of an HTTP meter: the core's, plus what requests need. `A` is what the framework hands
 * the callbacks: `[ctx]` on Koa, `[req, res]` on Express.
 */
export interface HttpMeterOptions<A extends unknown[]> extends MeterCoreOptions {
  /**
   * Returns the Planship customer id (or alternative id, such as an e-mail) of the request, or
   * `undefined` when the request has no customer. Gets `ctx` on Koa, `(req, res)` on Express.
   * May be async. Required by `middleware()`, `consume()` and `requireFeature()`: mounting one of
   * them on a meter without it throws a `TypeError`. Defaults to none (a meter used only through
   * `reserve`, `report` and `isEntitled` needs none).
   */
  identify?: Identify<A> | undefined
  /**
   * Writes the answer of a denied request instead of the default JSON body. The handler never
   * runs after a denial. Defaults to a JSON body `{ error: { code, message, lever? } }`.
   */
  onDenied?: (...args: [...A, denial: Denial]) => void | Promise<void>
  /**
   * Rate-limit headers on every metered response, for the lever with the least room:
   * `'draft'` sends `RateLimit-Policy` and `RateLimit` (IETF httpapi draft), `'legacy'` sends
   * `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch seconds),
   * `false` sends none. A 429 says `Retry-After` whenever the reset is known. Defaults to `'draft'`.
   */
  headers?: HeaderStyle
  /**
   * What a client that goes away before its response was fully written is billed: `'bill'`,
   * the usage as read at that moment (for a handler counting what it sent: what was delivered);
   * `'release'`, nothing. A route's `onAbort` overrides it. Defaults to a rule: billed when the
   * response had started (headers sent) or the handler had finished, released when the client
   * left before any of it was written.
   */
  onAbort?: AbortPolicy
}

export interface ResolvedConfig<A extends unknown[]> {
  productSlug: string
  planship: Required<Omit<PlanshipConnectionOptions, 'baseUrl'>> & { baseUrl: string }
  identify: HttpMeterOptions<A>['identify']
  cache: Required<CacheOptions>
  reporting: Required<ReportingOptions>
  failMode: 'open' | 'closed'
  onDenied: HttpMeterOptions<A>['onDenied']
  mode: Mode
  onAbort: AbortPolicy | undefined
  headers: HeaderStyle
  log: Log
  onEvent: ((event: MeterEvent) => void) | undefined
  fetch: typeof fetch | undefined
  clock: Clock
  store: UsageStore | undefined
  /** Thresholds ascending, without repeats; `undefined` when alerts are off. */
  alerts: { thresholds: number[] } | undefined
}

function fail(option: string, expected: string): never {
  return invalidOption('planship-meter', option, expected)
}

function nonEmptyString(value: unknown, option: string): string {
  if (typeof value !== 'string' || value.length === 0) fail(option, 'a non-empty string')
  return value
}

function positiveInteger(value: number | undefined, option: string, fallback: number): number {
  return integerOption('planship-meter', value, option, fallback, 1)
}

function nonNegativeInteger(value: number | undefined, option: string, fallback: number): number {
  return integerOption('planship-meter', value, option, fallback, 0)
}

function optionalFunction<F>(value: F | undefined, option: string): F | undefined {
  if (value !== undefined && typeof value !== 'function') fail(option, 'a function')
  return value
}

function optionalObject<T extends object>(value: T | undefined, option: string): Partial<T> {
  if (value === undefined) return {}
  if (value === null || typeof value !== 'object') fail(option, 'an object')
  return value
}

function resolveAlerts(value: AlertOptions | undefined): { thresholds: number[] } | undefined {
  if (value === undefined) return undefined
  const alerts = optionalObject(value, 'alerts')
  const expected = 'a non-empty array of fractions of the limit, each greater than 0 and at most 1 (e.g. [0.8, 1])'
  const thresholds = alerts.thresholds
  if (!Array.isArray(thresholds) || thresholds.length === 0) fail('alerts.thresholds', expected)
  for (const threshold of thresholds as unknown[]) {
    if (typeof threshold !== 'number' || !(threshold > 0 && threshold <= 1)) fail('alerts.thresholds', expected)
  }
  return { thresholds: [...new Set(thresholds)].sort((a, b) => a - b) }
}

function normalizeBaseUrl(value: string | undefined): string {
  if (value === undefined) return 'https://api.planship.io'
  let url: URL
  try {
    url = new URL(value)
  } catch {
    fail('planship.baseUrl', 'an absolute http(s) URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail('planship.baseUrl', 'an absolute http(s) URL')
  return value
}

/** Validates user options once and fills in every default. Throws a `TypeError` naming the option. */
export function resolveConfig<A extends unknown[]>(options: HttpMeterOptions<A>): ResolvedConfig<A> {
  if (options === null || typeof options !== 'object') fail('options', 'an object')
  const planship = optionalObject(options.planship, 'planship')
  if (options.planship === undefined) fail('planship', 'an object with clientId and clientSecret')
  const cache = optionalObject(options.cache, 'cache')
  const reporting = optionalObject(options.reporting, 'reporting')
  const clientAuth = planship.clientAuth ?? 'basic-raw'
  if (clientAuth !== 'basic-raw' && clientAuth !== 'basic-encoded') {
    fail('planship.clientAuth', "'basic-raw' or 'basic-encoded'")
  }
  const delivery = reporting.delivery ?? 'at-least-once'
  if (delivery !== 'at-least-once' && delivery !== 'at-most-once') {
    fail('reporting.delivery', "'at-least-once' or 'at-most-once'")
  }
  const failMode = options.failMode ?? 'open'
  if (failMode !== 'open' && failMode !== 'closed') fail('failMode', "'open' or 'closed'")
  const clock = options.clock ?? Date
  if (typeof clock.now !== 'function') fail('clock', 'an object with a now() method')
  const logger = options.logger === undefined ? undefined : (optionalObject(options.logger, 'logger') as Logger)
  const loggerStyle = options.loggerStyle
  if (loggerStyle !== undefined && loggerStyle !== 'message-first' && loggerStyle !== 'fields-first') {
    fail('loggerStyle', "'message-first' or 'fields-first'")
  }

  const headers = options.headers ?? 'draft'
  if (headers !== 'draft' && headers !== 'legacy' && headers !== false) fail('headers', "'draft', 'legacy' or false")

  const productSlug = nonEmptyString(options.productSlug, 'productSlug')
  if (pathSegmentProblem(productSlug) !== undefined) fail('productSlug', 'a product slug (one URL path segment)')
  return {
    productSlug,
    planship: {
      baseUrl: normalizeBaseUrl(planship.baseUrl),
      clientId: nonEmptyString(planship.clientId, 'planship.clientId'),
      clientSecret: nonEmptyString(planship.clientSecret, 'planship.clientSecret'),
      timeoutMs: positiveInteger(planship.timeoutMs, 'planship.timeoutMs', 5_000),
      maxResponseBytes: positiveInteger(planship.maxResponseBytes, 'planship.maxResponseBytes', 1_048_576),
      clientAuth,
    },
    identify: optionalFunction(options.identify, 'identify'),
    cache: {
      ttlMs: positiveInteger(cache.ttlMs, 'cache.ttlMs', 30_000),
      maxStaleMs: nonNegativeInteger(cache.maxStaleMs, 'cache.maxStaleMs', 300_000),
      max: positiveInteger(cache.max, 'cache.max', 10_000),
      aggregationLagMs: nonNegativeInteger(cache.aggregationLagMs, 'cache.aggregationLagMs', 5_000),
    },
    reporting: {
      flushIntervalMs: positiveInteger(reporting.flushIntervalMs, 'reporting.flushIntervalMs', 1_000),
      maxConcurrency: positiveInteger(reporting.maxConcurrency, 'reporting.maxConcurrency', 4),
      maxPostsPerSecond: positiveInteger(reporting.maxPostsPerSecond, 'reporting.maxPostsPerSecond', 50),
      closeTimeoutMs: nonNegativeInteger(reporting.closeTimeoutMs, 'reporting.closeTimeoutMs', 10_000),
      maxPendingKeys: positiveInteger(reporting.maxPendingKeys, 'reporting.maxPendingKeys', 100_000),
      delivery,
    },
    failMode,
    onDenied: optionalFunction(options.onDenied, 'onDenied'),
    mode: validateMode(options.mode) ?? 'enforce',
    onAbort: validateOnAbort(options.onAbort),
    headers,
    log: createLog(logger, loggerStyle, clock),
    onEvent: optionalFunction(options.onEvent, 'onEvent'),
    fetch: optionalFunction(options.fetch, 'fetch'),
    clock,
    store: options.store,
    alerts: resolveAlerts(options.alerts),
  }
}
