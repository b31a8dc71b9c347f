/**
 * Compile-only: `npm run typecheck` checks this file (mocha never runs it). Each
 * `@ts-expect-error` proves a misuse fails to compile; the rest proves the types fit Fastify.
 */
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { createMeter, type FastifyMeter, type PlanshipRequestState } from '../../src/fastify/index.js'

declare const meter: FastifyMeter

const app = Fastify()
await app.register(meter.plugin)

// request.planship is declared on every request: the state, or null where the meter is not.
app.get('/v1/status', async (request) => {
  const state: PlanshipRequestState | null = request.planship
  // @ts-expect-error null before the meter's hook, and on routes it does not see
  const sure: PlanshipRequestState = request.planship
  return { customerId: state?.customerId ?? null, sure }
})

// The hooks fit `preHandler`, alone or in a list, on routes with typed parts too.
app.get<{ Querystring: { limit: string } }>(
  '/v1/rows',
  {
    preHandler: [
      meter.requireFeature('csv-export'),
      meter.consume('api-call', { cost: (request) => Number((request.query as { limit?: string }).limit ?? 1) }),
    ],
  },
  async (request) => {
    const reservation = request.planship?.reservations['api-call']
    const more: Promise<boolean> | undefined = reservation?.extend(10)
    return { limit: request.query.limit, more: await more }
  },
)

// They fit an HTTP/2 app's routes as well, and so does statusRoute().
const h2 = Fastify({ http2: true })
await h2.register(meter.plugin)
h2.get('/v1/renders', { preHandler: [meter.requireFeature('renders'), meter.consume('render')] }, async () => ({}))
h2.get('/v1/usage', meter.statusRoute())

// Callbacks get (request, reply).
meter.consume('api-call', {
  usage: (_request: FastifyRequest, reply: FastifyReply) => Number(reply.getHeader('x-rows')),
  bucket: (request) => request.headers['x-project'] as string | undefined,
  shouldReport: (_request, reply) => reply.statusCode < 400,
})
// @ts-expect-error a cost is a number or a function of (request, reply), not a string
meter.consume('render', { cost: '1' })
// @ts-expect-error Fastify callbacks get (request, reply): there is no ctx.state
meter.consume('render', { bucket: (ctx) => ctx.state.project })
// @ts-expect-error mode is 'enforce' or 'shadow'
meter.requireFeature('csv-export', { mode: 'off' })

createMeter({
  productSlug: 'acme-api',
  planship: { clientId: 'id', clientSecret: 'secret' },
  identify: async (request) => request.headers['x-customer-id'] as string | undefined,
  onDenied: async (_request, reply, denial) => {
    await reply.code(denial.status).send(denial.message)
  },
  mode: 'shadow',
  onAbort: 'bill',
})
createMeter({
  productSlug: 'acme-api',
  planship: { clientId: 'id', clientSecret: 'secret' },
  // @ts-expect-error identify gets the Fastify request: it has no get()
  identify: (request) => request.get('x-customer-id'),
})
