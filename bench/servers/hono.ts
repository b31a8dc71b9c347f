/**
 * The Hono servers of the benchmark, served by @hono/node-server: bare, bare behind two no-op
 * middlewares, the meter (./hono-meter.ts), hono-rate-limiter in memory keyed by customer.
 */
import { getRequestListener } from '@hono/node-server'
import { Hono, type MiddlewareHandler } from 'hono'
import { rateLimiter } from 'hono-rate-limiter'
import { createHonoMeterServer } from './hono-meter.js'
import { type BenchServer, body, type Mode, type PlanshipTarget, UNREACHED } from './index.js'

export async function createHonoServer(mode: Mode, target: PlanshipTarget): Promise<BenchServer> {
  if (mode !== 'bare' && mode !== 'limiter' && mode !== 'bare-layers') {
    return createHonoMeterServer(mode, target)
  }
  const app = new Hono()
  if (mode === 'bare-layers') {
    // Where the meter mounts its two: one on the app, one on the route.
    const noop: MiddlewareHandler = (_c, next) => next()
    app.use(noop)
    app.get('/v1/widgets', noop, (c) => c.json(body()))
    return { handler: getRequestListener(app.fetch) }
  }
  if (mode === 'limiter') {
    app.use(
      rateLimiter({
        windowMs: 60_000,
        limit: UNREACHED,
        keyGenerator: (c) => c.req.header('x-customer-id') ?? '',
      }),
    )
  }
  app.get('/v1/widgets', (c) => c.json(body()))
  return { handler: getRequestListener(app.fetch) }
}
