/**
 * The Fastify meter's bench server, against the adapter's public contract
 * (`planship-meter/fastify`): the plugin, and `consume()` as the route's `preHandler`.
 */
import { createMeter } from '../../src/fastify/index.js'
import { fastifyApp } from './fastify.js'
import { type BenchServer, body, meterOptions, type Mode, type PlanshipTarget } from './index.js'

export async function createFastifyMeterServer(mode: Mode, target: PlanshipTarget): Promise<BenchServer> {
  const { app, handler } = fastifyApp()
  const planship = createMeter({
    ...meterOptions(mode, target),
    identify: (request) => (request.headers['x-customer-id'] as string | undefined) || undefined,
  })
  await app.register(planship.plugin)
  app.get('/v1/widgets', { preHandler: planship.consume('api-call') }, async () => body())
  await app.ready()
  return { handler: handler(), meter: planship }
}
