import express, { type ErrorRequestHandler, type Express } from 'express'
import { createMeter, type ExpressMeter, type ExpressMeterOptions } from '../../src/express/index.js'

/** The demo API on Express: a free route, two metered routes and a feature-gated one. */
export function createDemoApp(
  planship: Pick<ExpressMeterOptions, 'planship' | 'productSlug'> & Partial<ExpressMeterOptions>,
): { app: Express; meter: ExpressMeter } {
  const meter = createMeter({
    // Your auth decides who the customer is; the demo trusts a header.
    identify: (req) => req.get('x-customer-id') || undefined,
    ...planship,
  })

  const app = express()
  app.use(meter.middleware())

  app.get('/v1/status', (_req, res) => {
    res.json({ ok: true, customer: res.locals.planship?.customerId ?? null })
  })

  // 1 unit of the monthly api-calls quota per search.
  app.get('/v1/search', meter.consume('api-call'), (req, res) => {
    const q = String(req.query['q'] ?? '')
    res.json({ query: q, results: [`${q} one`, `${q} two`] })
  })

  // Renders are rate-limited per minute, bucketed by project.
  app.post(
    '/v1/renders',
    meter.consume('render', { bucket: (req) => req.get('x-project') || undefined }),
    (_req, res) => {
      res.json({ id: `render-${Date.now()}`, status: 'queued' })
    },
  )

  // The customer's own quotas, for a dashboard: never metered (GitHub's GET /rate_limit).
  app.get('/v1/usage', meter.statusRoute())

  // Pro feature: CSV export.
  app.get('/v1/export.csv', meter.requireFeature('csv-export'), (_req, res) => {
    res.type('text/csv').send('id,name\n1,Ada\n2,Grace\n')
  })

  // Errors of a metered route reach Express's error handling; their reservation is released.
  const errors: ErrorRequestHandler = (error: unknown, _req, res, _next) => {
    res.status(500).json({ error: { code: 'internal', message: error instanceof Error ? error.message : 'error' } })
  }
  app.use(errors)
  return { app, meter }
}
