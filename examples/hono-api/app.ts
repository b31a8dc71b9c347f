import { Hono } from 'hono'
import { createMeter, type HonoMeter, type HonoMeterOptions, type PlanshipVariables } from '../../src/hono/index.js'

/** The demo API on Hono: a free route, two metered routes and a feature-gated one. */
export function createDemoApp(
  planship: Pick<HonoMeterOptions, 'planship' | 'productSlug'> & Partial<HonoMeterOptions>,
): { app: Hono<{ Variables: PlanshipVariables }>; meter: HonoMeter } {
  const meter = createMeter({
    // Your auth decides who the customer is; the demo trusts a header.
    identify: (c) => c.req.header('x-customer-id') || undefined,
    ...planship,
  })

  const app = new Hono<{ Variables: PlanshipVariables }>()
  app.use(meter.middleware())

  app.get('/v1/status', (c) => c.json({ ok: true, customer: c.var.planship.customerId ?? null }))

  // 1 unit of the monthly api-calls quota per search.
  app.get('/v1/search', meter.consume('api-call'), (c) => {
    const q = c.req.query('q') ?? ''
    return c.json({ query: q, results: [`${q} one`, `${q} two`] })
  })

  // Renders are rate-limited per minute, bucketed by project.
  app.post('/v1/renders', meter.consume('render', { bucket: (c) => c.req.header('x-project') || undefined }), (c) =>
    c.json({ id: `render-${Date.now()}`, status: 'queued' }),
  )

  // The customer's own quotas, for a dashboard: never metered (GitHub's GET /rate_limit).
  app.get('/v1/usage', meter.statusRoute())

  // Pro feature: CSV export.
  app.get('/v1/export.csv', meter.requireFeature('csv-export'), (c) =>
    c.body('id,name\n1,Ada\n2,Grace\n', 200, { 'content-type': 'text/csv' }),
  )

  // Errors of a metered route reach app.onError; their reservation is released.
  app.onError((error, c) => c.json({ error: { code: 'internal', message: error.message } }, 500))
  return { app, meter }
}
