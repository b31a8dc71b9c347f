import Router from '@koa/router'
import Koa from 'koa'
import { createMeter, type Meter, type MeterOptions, type PlanshipState } from '../../src/index.js'

/** The demo API: a free route, two metered routes and a feature-gated one. */
export function createDemoApp(planship: Pick<MeterOptions, 'planship' | 'productSlug'> & Partial<MeterOptions>): {
  app: Koa<PlanshipState>
  meter: Meter
} {
  const meter = createMeter({
    // Your auth decides who the customer is; the demo trusts a header.
    identify: (ctx) => ctx.get('x-customer-id') || undefined,
    ...planship,
  })

  const app = new Koa<PlanshipState>()
  const router = new Router<PlanshipState>()

  router.get('/v1/status', (ctx) => {
    ctx.body = { ok: true, customer: ctx.state.planship?.customerId ?? null }
  })

  // 1 unit of the monthly api-calls quota per search.
  router.get('/v1/search', meter.consume('api-call'), (ctx) => {
    const q = String(ctx.query['q'] ?? '')
    ctx.body = { query: q, results: [`${q} one`, `${q} two`] }
  })

  // Renders are rate-limited per minute, bucketed by project.
  router.post('/v1/renders', meter.consume('render', { bucket: (ctx) => ctx.get('x-project') || undefined }), (ctx) => {
    ctx.body = { id: `render-${Date.now()}`, status: 'queued' }
  })

  // The customer's own quotas, for a dashboard: never metered (GitHub's GET /rate_limit).
  router.get('/v1/usage', meter.statusRoute())

  // Pro feature: CSV export.
  router.get('/v1/export.csv', meter.requireFeature('csv-export'), (ctx) => {
    ctx.type = 'text/csv'
    ctx.body = 'id,name\n1,Ada\n2,Grace\n'
  })

  app.use(meter.middleware())
  app.use(router.routes())
  app.use(router.allowedMethods())
  return { app, meter }
}
