import express, { type ErrorRequestHandler, type Express } from 'express'
import type { EmulatorOptions } from '../../src/emulator/index.js'
import { createMeter, type ExpressMeter, type ExpressMeterOptions } from '../../src/express/index.js'
import { type Harness, startHarnessWith } from './harness.js'

export type ExpressHarness = Harness<ExpressMeter, ExpressMeterOptions>

/** An emulator on 127.0.0.1 and an Express meter talking to it. */
export function startExpressHarness(
  overrides: { meter?: Partial<ExpressMeterOptions>; emulator?: EmulatorOptions } = {},
): Promise<ExpressHarness> {
  return startHarnessWith(createMeter, (req) => req.get('x-customer-id') || undefined, overrides)
}

/** Answers errors as JSON 500s, quietly: what an app's error handler would do. */
export const jsonErrors: ErrorRequestHandler = (error: unknown, _req, res, _next) => {
  res.status(500).json({ error: error instanceof Error ? error.message : String(error) })
}

/** An Express 5 app (or one of `framework`: Express 4) with the meter mounted and a route per kind, counting handler runs. */
export function expressDemoApp(meter: ExpressMeter, framework = express): { app: Express; handled: { count: number } } {
  const handled = { count: 0 }
  const app = framework()
  app.use(meter.middleware())
  app.post('/calls', meter.consume('api-call'), (_req, res) => {
    handled.count++
    res.json({ ok: true })
  })
  app.post('/renders', meter.consume('render'), (_req, res) => {
    handled.count++
    res.json({ ok: true, customer: res.locals.planship.customerId })
  })
  app.get('/export', meter.requireFeature('csv-export'), (_req, res) => {
    handled.count++
    res.json({ ok: true })
  })
  app.use(jsonErrors)
  return { app, handled }
}
