import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { AdminControls } from './admin.js'
import { createEmulatorApp } from './app.js'
import { EventFeed } from './event-feed.js'
import { ThresholdFeed } from './thresholds.js'
import { RequestCounters } from './counters.js'
import { FaultInputError, parseFaultConfig, type FaultConfig, type ParsedFaultConfig } from './fault-config.js'
import { Faults } from './faults.js'
import { overview, recordView } from './overview.js'
import { fixtureCredentials, loadFixture, type Fixture } from './fixture.js'
import { EmulatorState } from './state.js'
import { EmulatorClock } from './time.js'
import { loadKoa } from './koa-layer.js'
import { ApiError } from './api-error.js'
import { createSubscribedCustomer, type NewCustomer } from './subscribed-customer.js'
import { customerWire, meteringRecordWire, type MeteringRecordWire } from './wire.js'

export { defaultFixture, loadFixture } from './fixture.js'
export type {
  AggregationPeriod,
  AggregationScope,
  DurationUnit,
  EntitlementValue,
  Fixture,
  FixtureBooleanLever,
  FixtureCredentials,
  FixtureCustomer,
  FixtureEnumLever,
  FixtureIntegerLever,
  FixtureLever,
  FixtureListLever,
  FixtureMeteredLever,
  FixturePlan,
  FixtureProduct,
  FixtureSubscription,
  MeteringFormula,
} from './fixture.js'
export type { LeverUsageWire } from './aggregation.js'
export type { RouteName } from './counters.js'
export type { ApplyThenFailMode, FaultConfig, FaultKind, FaultRule, FaultStatus } from './fault-config.js'
export type { NewCustomer } from './subscribed-customer.js'
export type { CustomerWire, MeteringRecordWire } from './wire.js'

/** Options of {@link startEmulator}. */
export interface EmulatorOptions {
  /** Interface to listen on. Defaults to `'127.0.0.1'`. */
  host?: string
  /** Port to listen on; `0` picks a free one (read it from `emulator.url`). Defaults to `0`. */
  port?: number
  /** A fixture object or the path of a JSON fixture file. Defaults to the demo fixture ({@link defaultFixture}). */
  fixture?: Fixture | string
  /**
   * Reported usage shows in lever usage and entitlements only this many ms after it was reported,
   * like Planship's asynchronous aggregation. Defaults to `0`.
   */
  aggregationLagMs?: number
  /** Delay added before every API answer (not the `/_emulator` admin routes), in ms. Defaults to `0`. */
  latencyMs?: number
  /** `expires_in` of issued tokens; tokens are rejected (401) once it has passed. Defaults to `3600`. */
  tokenTtlSeconds?: number
  /** Time source in ms since the epoch, e.g. a fake clock. Defaults to `Date.now`. */
  clock?: { now(): number }
  /**
   * Faults injected from the start (see {@link Emulator.setFaults}); `faults.aggregationLagMs`
   * overrides `aggregationLagMs`. Defaults to none, with seed `1`.
   */
  faults?: FaultConfig
}

/** A running emulator. */
export interface Emulator {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:43121`; pass it as the SDK's `baseUrl`. */
  readonly url: string
  /** First credentials of the fixture. */
  readonly clientId: string
  readonly clientSecret: string
  /** Slug of the fixture's first product. */
  readonly productSlug: string
  readonly server: Server
  /** Requests per API route (by {@link RouteName}) since start or the last reset, whatever their outcome. */
  requestCounts(): Record<string, number>
  resetRequestCounts(): void
  /** Every token issued so far is rejected from now on (401); new tokens can still be requested. */
  revokeTokens(): void
  setAggregationLag(ms: number): void
  /** Delay before every API answer, in ms; `latency` fault rules add to it. */
  setLatency(ms: number): void
  /**
   * Changes fault injection while running (also `PUT /_emulator/faults`). Fields left out keep their
   * value; `rules` replaces the whole list; `seed` restarts the PRNG behind every `rate`, so the same
   * requests in the same order meet the same faults. Throws a `TypeError` naming the field.
   *
   * @example
   * emu.setFaults({ seed: 7, rules: [{ route: 'reportUsage', kind: 'error', rate: 0.3, status: 503 }] })
   */
  setFaults(config: FaultConfig): void
  /** No fault rules, not down, fault counts at zero, PRNG restarted from the seed (also `DELETE /_emulator/faults`). */
  clearFaults(): void
  /** How many times each fault kind fired since start, `clearFaults()` or `reset()`, e.g. `{ error: 12, down: 3 }`. */
  faultCounts(): Record<string, number>
  /**
   * `true`: Planship is down, every API request's connection is reset; admin routes keep working and
   * the port and state are kept. `false`: back up.
   */
  setDown(down: boolean): void
  /** Emulator time in ms since the epoch: the clock plus every {@link Emulator.advanceClock}. */
  now(): number
  /** Moves emulator time forward: subscription periods, rolling windows, token expiry and lag follow. */
  advanceClock(ms: number): void
  /**
   * Creates a customer subscribed to `planSlug` (defaults to the first plan) of the first product
   * (also `POST /_emulator/customers`). Throws a `TypeError` naming the field for an unknown plan
   * or product, an `Error` if the alternative id is taken.
   *
   * @example
   * emu.createCustomer('acme@example.com', 'pro')
   * emu.createCustomer({ alternativeId: 'acme@example.com', plan: 'pro', name: 'Acme' })
   */
  createCustomer(alternativeId: string, planSlug?: string): { id: string }
  createCustomer(customer: NewCustomer): { id: string }
  /**
   * Sum of `usage` of every metering record matching the filter, ignoring aggregation lag and
   * periods. `customerId` may be the UUID or the alternative id; `bucket: null` matches unbucketed records.
   */
  recordedUsage(filter?: { customerId?: string; meteringId?: string; bucket?: string | null }): number
  /** Every metering record as it was returned on the wire, oldest first. */
  meteringRecords(): readonly MeteringRecordWire[]
  /**
   * Back to the fixture: customers, subscriptions, records, tokens, request counters, clock offset,
   * the latency, aggregation lag and fault seed the emulator started with; fault rules are cleared.
   */
  reset(): void
  /** Stops listening, ends the console's event streams and drops open connections. Safe to call more than once. */
  close(): Promise<void>
}

/**
 * Starts a Planship API emulator (API 0.3.1 wire format) that the official `@planship/fetch`
 * client can use unchanged.
 *
 * @example
 * const emu = await startEmulator()
 * const planship = new Planship(emu.productSlug, { clientId: emu.clientId, clientSecret: emu.clientSecret }, { baseUrl: emu.url })
 * await planship.getEntitlements('free-customer')
 * await emu.close()
 */
export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 0
  const aggregationLagMs = options.aggregationLagMs ?? 0
  const latencyMs = options.latencyMs ?? 0
  const tokenTtlSeconds = options.tokenTtlSeconds ?? 3600
  if (typeof host !== 'string' || host === '') throw new TypeError('host must be a non-empty string')
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new TypeError('port must be an integer from 0 to 65535')
  assertDuration(aggregationLagMs, 'aggregationLagMs')
  assertDuration(latencyMs, 'latencyMs')
  if (typeof tokenTtlSeconds !== 'number' || !Number.isFinite(tokenTtlSeconds) || tokenTtlSeconds <= 0) {
    throw new TypeError('tokenTtlSeconds must be a positive number')
  }
  if (options.clock !== undefined && typeof options.clock?.now !== 'function') {
    throw new TypeError('clock must have a now() method')
  }
  const initialFaults = options.faults === undefined ? {} : checkFaults(options.faults, 'faults')
  const startLagMs = initialFaults.aggregationLagMs ?? aggregationLagMs

  const fixture = loadFixture(options.fixture)
  const credentials = fixtureCredentials(fixture)[0]
  const product = fixture.products[0]
  if (credentials === undefined || product === undefined) throw new TypeError('fixture needs credentials and a product')

  const clock = new EmulatorClock(options.clock ?? { now: () => Date.now() })
  const feed = new EventFeed()
  const thresholds = new ThresholdFeed()
  const state: EmulatorState = new EmulatorState(fixture, {
    clock,
    aggregationLagMs: startLagMs,
    tokenTtlSeconds,
    // Shaped only for an open console: reports are the emulator's hottest path (benchmarks, soak).
    onRecord: (record) => {
      if (feed.size === 0) return
      feed.publish('record', recordView(record, state))
      for (const crossing of thresholds.crossed(record, state)) feed.publish('threshold', crossing)
    },
  })
  const counters = new RequestCounters()
  const faults = new Faults({ latencyMs, seed: initialFaults.seed ?? 1 })
  faults.configure(initialFaults)

  const controls: AdminControls = {
    requestCounts: () => counters.snapshot(),
    reset: () => {
      // The clock first: the fixture's subscriptions start at the reset time.
      clock.reset()
      state.reset()
      thresholds.clear()
      counters.reset()
      faults.reset()
      state.aggregationLagMs = startLagMs
    },
    revokeTokens: () => state.tokens.revokeAll(),
    advanceClock: (ms) => {
      assertDuration(ms, 'ms')
      clock.advance(ms)
    },
    now: () => clock.now(),
    setAggregationLag: (ms) => {
      assertDuration(ms, 'ms')
      state.aggregationLagMs = ms
    },
    setLatency: (ms) => {
      assertDuration(ms, 'ms')
      faults.settings.latencyMs = ms
    },
    recordedUsage: (filter) => state.recordedUsage(filter),
    meteringRecords: () => state.allRecords().map(meteringRecordWire),
    setFaults: (config) => {
      faults.configure(config)
      if (config.aggregationLagMs !== undefined) state.aggregationLagMs = config.aggregationLagMs
      if (config.revokeTokens === true) state.tokens.revokeAll()
    },
    clearFaults: () => faults.clear(),
    faults: () => ({ ...faults.snapshot(), aggregationLagMs: state.aggregationLagMs }),
    faultCounts: () => faults.firedCounts(),
    createCustomer: (input) => customerWire(createSubscribedCustomer(state, input), state.catalog),
    overview: () => overview(state),
    latencyMs: () => faults.settings.latencyMs,
  }

  const app = createEmulatorApp(await loadKoa(), { state, counters, faults, controls, feed })
  const server = createServer(app.callback())
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const url = `http://${urlHost(host)}:${(server.address() as AddressInfo).port}`

  let closing: Promise<void> | undefined
  return {
    url,
    clientId: credentials.clientId,
    clientSecret: credentials.clientSecret,
    productSlug: product.slug,
    server,
    requestCounts: controls.requestCounts,
    resetRequestCounts: () => counters.reset(),
    revokeTokens: controls.revokeTokens,
    setAggregationLag: controls.setAggregationLag,
    setLatency: controls.setLatency,
    setFaults: (config) => controls.setFaults(checkFaults(config, 'config')),
    clearFaults: controls.clearFaults,
    faultCounts: controls.faultCounts,
    setDown: (down) => {
      if (typeof down !== 'boolean') throw new TypeError('down must be a boolean')
      faults.setDown(down)
    },
    now: controls.now,
    advanceClock: controls.advanceClock,
    createCustomer: (customerOrId: NewCustomer | string, planSlug?: string) => {
      const input: NewCustomer = typeof customerOrId === 'string' ? { alternativeId: customerOrId } : customerOrId
      if (planSlug !== undefined) input.plan = planSlug
      if (typeof input?.alternativeId !== 'string' || input.alternativeId === '') {
        throw new TypeError('alternativeId must be a non-empty string')
      }
      try {
        return { id: controls.createCustomer(input).id }
      } catch (error) {
        if (!(error instanceof ApiError)) throw error
        // The admin route's answer, as the exception a JS caller expects.
        const [issue] = Array.isArray(error.detail) ? error.detail : []
        if (issue !== undefined) throw new TypeError(`${String(issue.loc[1])}: ${issue.msg}`, { cause: error })
        throw new Error(error.message, { cause: error })
      }
    },
    recordedUsage: (filter = {}) => state.recordedUsage(filter),
    meteringRecords: controls.meteringRecords,
    reset: controls.reset,
    close: () => {
      closing ??= (async () => {
        // Event streams are responses that never end by themselves; ending them also refuses new ones.
        await feed.close()
        await new Promise<void>((resolve, reject) => {
          server.closeAllConnections()
          server.close((error) => (error === undefined ? resolve() : reject(error)))
        })
      })()
      return closing
    },
  }
}

/** Validated fault input, or a `TypeError` naming the field under `root` (e.g. `faults.rules[0].rate`). */
function checkFaults(config: unknown, root: string): ParsedFaultConfig {
  try {
    return parseFaultConfig(config, 'camel')
  } catch (error) {
    if (error instanceof FaultInputError) throw new TypeError(error.describe(root), { cause: error })
    throw error
  }
}

function assertDuration(value: unknown, name: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`${name} must be a finite number >= 0`)
  }
}

/** The host to put in the URL: a wildcard address is reached through loopback, IPv6 needs brackets. */
function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1'
  if (host === '::') return '[::1]'
  return host.includes(':') ? `[${host}]` : host
}
