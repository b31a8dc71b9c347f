/** The Express 5 servers of the benchmark: bare, the meter, express-rate-limit in memory keyed by customer. */
import express from 'express'
import { rateLimit } from 'express-rate-limit'
import { createMeter } from '../../src/express/index.js'
import { type BenchServer, body, meterOptions, type Mode, type PlanshipTarget, UNREACHED } from './index.js'

export function createExpressServer(mode: Mode, target: PlanshipTarget): BenchServer {
  const app = express()
  const handler = (_req: express.Request, res: express.Response) => {
    res.json(body())
  }
  if (mode === 'bare') {
    app.get('/v1/widgets', handler)
    return { handler: app }
  }
  if (mode === 'bare-layers') {
    const noop: express.RequestHandler = (_req, _res, next) => next()
    app.use(noop)
    app.get('/v1/widgets', noop, handler)
    return { handler: app }
  }
  if (mode === 'limiter') {
    app.use(
      rateLimit({
        windowMs: 60_000,
        limit: UNREACHED,
        keyGenerator: (req) => req.get('x-customer-id') ?? '',
      }),
    )
    app.get('/v1/widgets', handler)
    return { handler: app }
  }
  const meter = createMeter({ ...meterOptions(mode, target), identify: (req) => req.get('x-customer-id') || undefined })
  app.use(meter.middleware())
  app.get('/v1/widgets', meter.consume('api-call'), handler)
  return { handler: app, meter }
}
