import type { Server } from 'node:http'
import { serve } from '@hono/node-server'
import { Hono, type ErrorHandler } from 'hono'
import type { EmulatorOptions } from '../../src/emulator/index.js'
import {
  createMeter,
  type HonoArgs,
  type HonoMeter,
  type HonoMeterOptions,
  type PlanshipVariables,
} from '../../src/hono/index.js'
import type { MeterOptions } from '../../src/index.js'
import { type Harness, startHarnessWith } from './harness.js'

export type HonoHarness = Harness<HonoMeter, HonoMeterOptions>

/** An emulator on 127.0.0.1 and a Hono meter talking to it. */
export function startHonoHarness(
  overrides: { meter?: Partial<HonoMeterOptions>; emulator?: EmulatorOptions } = {},
): Promise<HonoHarness> {
  // The harness is typed with the shared options, whose onDenied answers nothing; Hono's returns
  // the Response. The options are the same object either way.
  const create = createMeter as (options: MeterOptions<HonoArgs>) => HonoMeter
  const harness = startHarnessWith(create, (c) => c.req.header('x-customer-id') || undefined, {
    ...overrides,
    meter: overrides.meter as Partial<MeterOptions<HonoArgs>> | undefined,
  })
  return harness as Promise<Harness<HonoMeter, unknown>> as Promise<HonoHarness>
}

/** Answers errors as JSON 500s, quietly (Hono's default handler logs them): what an app's would do. */
export const jsonErrors: ErrorHandler = (error, c) =>
  c.json({ error: error instanceof Error ? error.message : String(error) }, 500)

/** A Hono app as a server factory: served by @hono/node-server (real sockets, `c.env.outgoing`). */
export function served(app: Hono<never> | { fetch: Hono['fetch'] }): { listen(port: number, host: string): Server } {
  return { listen: (port, hostname) => serve({ fetch: app.fetch, port, hostname }) as Server }
}

/** A Hono app with the meter mounted and a route per kind, counting handler runs. */
export function honoDemoApp(meter: HonoMeter): {
  app: { listen(port: number, host: string): Server }
  handled: { count: number }
} {
  const handled = { count: 0 }
  const app = new Hono<{ Variables: PlanshipVariables }>()
  app.use(meter.middleware())
  app.post('/calls', meter.consume('api-call'), (c) => {
    handled.count++
    return c.json({ ok: true })
  })
  app.post('/renders', meter.consume('render'), (c) => {
    handled.count++
    return c.json({ ok: true, customer: c.var.planship.customerId })
  })
  app.get('/export', meter.requireFeature('csv-export'), (c) => {
    handled.count++
    return c.json({ ok: true })
  })
  app.onError(jsonErrors)
  return { app: served(app), handled }
}
