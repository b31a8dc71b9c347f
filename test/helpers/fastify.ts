import type { Server } from 'node:http'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { EmulatorOptions } from '../../src/emulator/index.js'
import { createMeter, type FastifyMeter, type FastifyMeterOptions } from '../../src/fastify/index.js'
import { type Harness, startHarnessWith } from './harness.js'

export type FastifyHarness = Harness<FastifyMeter, FastifyMeterOptions>

/** The `x-customer-id` header of a Fastify request, as the demo's auth would find the customer. */
export const customerHeader = (request: { headers: Record<string, string | string[] | undefined> }) => {
  const id = request.headers['x-customer-id']
  return typeof id === 'string' && id !== '' ? id : undefined
}

/** An emulator on 127.0.0.1 and a Fastify meter talking to it. */
export function startFastifyHarness(
  overrides: { meter?: Partial<FastifyMeterOptions>; emulator?: EmulatorOptions } = {},
): Promise<FastifyHarness> {
  return startHarnessWith(createMeter, customerHeader, overrides)
}

/** A ready Fastify app as the shared suites take it: something whose `listen` gives Node's server. */
export async function listenable(app: FastifyInstance): Promise<{ listen(port: number, host: string): Server }> {
  await app.ready()
  return { listen: (port, host) => app.server.listen(port, host) }
}

/** A Fastify app with the meter registered and a route per kind, counting handler runs. */
export async function fastifyDemoApp(
  meter: FastifyMeter,
): Promise<{ app: { listen(port: number, host: string): Server }; handled: { count: number } }> {
  const handled = { count: 0 }
  const app = Fastify()
  await app.register(meter.plugin)
  app.post('/calls', { preHandler: meter.consume('api-call') }, async () => {
    handled.count++
    return { ok: true }
  })
  app.post('/renders', { preHandler: meter.consume('render') }, async (request) => {
    handled.count++
    return { ok: true, customer: request.planship?.customerId }
  })
  app.get('/export', { preHandler: meter.requireFeature('csv-export') }, async () => {
    handled.count++
    return { ok: true }
  })
  return { app: await listenable(app), handled }
}

/** A Fastify logger that keeps the errors it is handed (a stream's, a handler's) and says nothing. */
export function errorsLogger(errors: unknown[]): FastifyBaseLogger {
  const keep = (fields: unknown) => {
    const error = (fields as { err?: unknown } | null)?.err
    if (error !== undefined) errors.push(error)
  }
  const logger: FastifyBaseLogger = {
    level: 'info',
    fatal: keep,
    error: keep,
    warn: keep,
    info: () => {},
    debug: () => {},
    trace: () => {},
    silent: () => {},
    child: () => logger,
  }
  return logger
}
