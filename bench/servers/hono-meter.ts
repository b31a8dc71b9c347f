/**
 * The Hono meter's bench server, against the adapter's public contract (`planship-meter/hono`):
 * `middleware()` on the app, `consume()` on the route.
 */
import { getRequestListener } from '@hono/node-server'
import { Hono } from 'hono'
import { createMeter } from '../../src/hono/index.js'
import { type BenchServer, body, meterOptions, type Mode, type PlanshipTarget } from './index.js'

export function createHonoMeterServer(mode: Mode, target: PlanshipTarget): BenchServer {
  const app = new Hono()
  const planship = createMeter({ ...meterOptions(mode, target), identify: (c) => c.req.header('x-customer-id') })
  app.use(planship.middleware())
  app.get('/v1/widgets', planship.consume('api-call'), (c) => c.json(body()))
  return { handler: getRequestListener(app.fetch), meter: planship }
}
