import Fastify, { type FastifyInstance } from 'fastify'
import { createMeter, type FastifyMeter, type FastifyMeterOptions } from '../../src/fastify/index.js'

/** The demo API on Fastify: a free route, two metered routes and a feature-gated one. */
export async function createDemoApp(
  planship: Pick<FastifyMeterOptions, 'planship' | 'productSlug'> & Partial<FastifyMeterOptions>,
): Promise<{ app: FastifyInstance; meter: FastifyMeter }> {
  const meter = createMeter({
    // Your auth decides who the customer is; the demo trusts a header.
    identify: (request) => header(request.headers['x-customer-id']),
    ...planship,
  })

  const app = Fastify()
  await app.register(meter.plugin)

  app.get('/v1/status', async (request) => ({ ok: true, customer: request.planship?.customerId ?? null }))

  // 1 unit of the monthly api-calls quota per search.
  app.get<{ Querystring: { q?: string } }>('/v1/search', { preHandler: meter.consume('api-call') }, async (request) => {
    const q = request.query.q ?? ''
    return { query: q, results: [`${q} one`, `${q} two`] }
  })

  // Renders are rate-limited per minute, bucketed by project.
  app.post(
    '/v1/renders',
    { preHandler: meter.consume('render', { bucket: (request) => header(request.headers['x-project']) }) },
    async () => ({ id: `render-${Date.now()}`, status: 'queued' }),
  )

  // The customer's own quotas, for a dashboard: never metered (GitHub's GET /rate_limit).
  app.get('/v1/usage', meter.statusRoute())

  // Pro feature: CSV export.
  app.get('/v1/export.csv', { preHandler: meter.requireFeature('csv-export') }, async (_request, reply) =>
    reply.type('text/csv').send('id,name\n1,Ada\n2,Grace\n'),
  )

  // Errors of a metered route reach Fastify's error handling; their reservation is released.
  app.setErrorHandler(async (error, _request, reply) =>
    reply.code(500).send({ error: { code: 'internal', message: error instanceof Error ? error.message : 'error' } }),
  )
  return { app, meter }
}

/** A header's value, `undefined` when missing or empty. */
function header(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}
