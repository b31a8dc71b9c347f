import assert from 'node:assert/strict'
import type { Server } from 'node:http'
import Router from '@koa/router'
import Koa from 'koa'
import request from 'supertest'
import { type Emulator, type EmulatorOptions, startEmulator } from '../../src/emulator/index.js'
import {
  createMeter,
  type Logger,
  type Meter,
  type MeterCore,
  type MeterEvent,
  type MaybePromise,
  type MeterOptions,
  type PlanshipState,
} from '../../src/index.js'

/** A logger that keeps every line, so tests can read what the meter said (and that no secret is in it). */
export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = []
  const keep = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push(`${level} ${message} ${fields === undefined ? '' : JSON.stringify(fields)}`)
  }
  return { lines, debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error') }
}

/**
 * Polls `condition` every `everyMs` until it holds or `capMs` has passed; resolves whether it
 * held. For what a timer, a background pass or another process does "soon": a loaded machine
 * delays it by more than any fixed wait, so tests wait for the outcome and then assert it.
 */
export async function until(
  condition: () => boolean | Promise<boolean>,
  capMs = 5_000,
  everyMs = 20,
): Promise<boolean> {
  const giveUpAt = performance.now() + capMs
  for (;;) {
    if (await condition()) return true
    if (performance.now() >= giveUpAt) return false
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}

/** {@link until}, then asserts that `condition` held, saying `what` when it did not. */
export async function eventually(condition: () => boolean | Promise<boolean>, what: string, capMs?: number) {
  assert.ok(await until(condition, capMs), what)
}

/** A clock the test moves by hand. Starts far from 0 (lru-cache and TTL maths dislike 0). */
export function manualClock(start = 1_700_000_000_000): { now(): number; advance(ms: number): void } {
  let time = start
  return {
    now: () => time,
    advance: (ms) => {
      time += ms
    },
  }
}

export interface Harness<M extends MeterCore = Meter, O = MeterOptions> {
  emu: Emulator
  meter: M
  logger: ReturnType<typeof recordingLogger>
  /** Meter options pointing at the emulator, to create further meters. */
  options: O
  close(): Promise<void>
}

/** An emulator on 127.0.0.1 and a Koa meter talking to it. */
export function startHarness(
  overrides: { meter?: Partial<MeterOptions>; emulator?: EmulatorOptions } = {},
): Promise<Harness> {
  return startHarnessWith(createMeter, (ctx) => ctx.get('x-customer-id') || undefined, overrides)
}

/** An emulator on 127.0.0.1 and a meter of any framework (`create`, `identify`) talking to it. */
export async function startHarnessWith<A extends unknown[], M extends MeterCore>(
  create: (options: MeterOptions<A>) => M,
  identify: MeterOptions<A>['identify'],
  overrides: { meter?: Partial<MeterOptions<A>>; emulator?: EmulatorOptions } = {},
): Promise<Harness<M, MeterOptions<A>>> {
  const emu = await startEmulator(overrides.emulator)
  const logger = recordingLogger()
  const options: MeterOptions<A> = {
    productSlug: emu.productSlug,
    planship: { baseUrl: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret },
    identify,
    logger,
    // Tests flush explicitly; the background timer must not race their assertions.
    reporting: { flushIntervalMs: 3_600_000, closeTimeoutMs: 2_000 },
    ...overrides.meter,
  }
  const meter = create(options)
  const harness: Harness<M, MeterOptions<A>> = {
    emu,
    meter,
    logger,
    options,
    async close() {
      await meter.close()
      // Tests may replace the emulator (stopped, then started again on its port): close the current one.
      await harness.emu.close()
    },
  }
  return harness
}
/** A Koa app running `middleware`, then a handler answering `ok`; errors answer 500 quietly. */
export function appWith(...middleware: Koa.Middleware<PlanshipState>[]): Koa<PlanshipState> {
  const app = new Koa<PlanshipState>()
  app.silent = true
  for (const layer of middleware) app.use(layer)
  app.use((ctx) => {
    ctx.body = 'ok'
  })
  return app
}

/** A Koa app with the meter mounted and a route per kind, counting handler runs. */
export function demoApp(meter: Meter): { app: Koa<PlanshipState>; handled: { count: number } } {
  const handled = { count: 0 }
  const app = new Koa<PlanshipState>()
  const router = new Router<PlanshipState>()
  const handler = (ctx: Koa.Context) => {
    handled.count++
    ctx.body = { ok: true }
  }
  router.post('/calls', meter.consume('api-call'), handler)
  router.post('/renders', meter.consume('render'), handler)
  router.get('/export', meter.requireFeature('csv-export'), handler)
  app.use(meter.middleware())
  app.use(router.routes())
  return { app, handled }
}

/**
 * Mocha hooks for the current suite: a fresh harness (`start`) before each test, closed after
 * it. Call the result for the current harness; `.events` holds what its meter emitted, when
 * `start` passes `onEvent` on.
 */
export function eachHarness<H extends { close(): Promise<void> }>(
  start: (onEvent: (event: MeterEvent) => void) => Promise<H>,
): (() => H) & { events: MeterEvent[] } {
  let harness: H | undefined
  const events: MeterEvent[] = []
  beforeEach(async () => {
    events.length = 0
    harness = await start((event) => events.push(event))
  })
  afterEach(() => harness?.close())
  return Object.assign(() => harness!, { events })
}

/**
 * Mocha hooks for a suite of one demo app: a fresh harness and the app (`demo`) listening on
 * 127.0.0.1 before each test, both closed after it. `call(path, customer)` POSTs to it.
 */
export function eachServedDemo<H extends Harness<MeterCore, unknown>>(
  start: () => Promise<H>,
  demo: (
    meter: H['meter'],
  ) => MaybePromise<{ app: { listen(port: number, host: string): Server }; handled: { count: number } }>,
) {
  const served = { server: undefined as unknown as Server, handled: { count: 0 } }
  const harness = eachHarness(async () => {
    const h = await start()
    const { app, handled } = await demo(h.meter) // a Fastify app is ready only once its plugins are
    served.server = app.listen(0, '127.0.0.1')
    served.handled = handled
    const closeHarness = h.close.bind(h)
    const close = async () => {
      served.server.closeAllConnections()
      served.server.close()
      await closeHarness()
    }
    return Object.assign(h, { close })
  })
  const call = (path: string, customer?: string) => {
    const req = request(served.server).post(path)
    return customer === undefined ? req : req.set('x-customer-id', customer)
  }
  return { harness, call, served }
}

/**
 * The free plan's 5 renders of the minute are all still there: 5 more are admitted, the next is
 * refused, and exactly 5 reach Planship. `render()` sends one render request of the customer.
 */
export async function assertRendersUntouched(
  h: Harness<MeterCore, unknown>,
  customerId: string,
  render: () => PromiseLike<{ status: number }>,
): Promise<void> {
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) statuses.push((await render()).status)
  if (statuses.join() !== '200,200,200,200,200,429') throw new Error(`renders answered ${statuses.join()}`)
  await h.meter.flush()
  const recorded = h.emu.recordedUsage({ customerId, meteringId: 'render' })
  if (recorded !== 5) throw new Error(`Planship received ${recorded} renders, not 5`)
}
