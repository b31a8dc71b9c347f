import Router from '@koa/router'
import Koa from 'koa'
import { type Emulator, type EmulatorOptions, startEmulator } from '../../src/emulator/index.js'
import {
  createMeter,
  type Logger,
  type Meter,
  type MeterCore,
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
