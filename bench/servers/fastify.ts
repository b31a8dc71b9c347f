/**
 * The Fastify 5 servers of the benchmark: bare, bare behind two no-op preHandler hooks, the meter
 * (./fastify-meter.ts), @fastify/rate-limit in memory keyed by customer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer as createHttpServer } from 'node:http'
import rateLimit from '@fastify/rate-limit'
import Fastify, { type FastifyInstance } from 'fastify'
import { createFastifyMeterServer } from './fastify-meter.js'
import { type BenchServer, body, type Mode, type PlanshipTarget, UNREACHED } from './index.js'

type Listener = (req: IncomingMessage, res: ServerResponse) => void

/** A Fastify app and its request listener (Fastify hands it to `serverFactory`), usable once ready. */
export function fastifyApp(): { app: FastifyInstance; handler: () => Listener } {
  let listener: Listener | undefined
  const app = Fastify({
    serverFactory: (handler) => {
      listener = handler
      return createHttpServer(handler)
    },
  })
  return {
    app,
    handler: () => {
      if (listener === undefined) throw new Error('bench: Fastify made no server')
      return listener
    },
  }
}

export async function createFastifyServer(mode: Mode, target: PlanshipTarget): Promise<BenchServer> {
  if (mode !== 'bare' && mode !== 'limiter' && mode !== 'bare-layers') {
    return createFastifyMeterServer(mode, target)
  }
  const { app, handler } = fastifyApp()
  if (mode === 'bare-layers') {
    // Where the meter mounts its two: an app-wide preHandler hook and the route's own.
    const noop = (_request: unknown, _reply: unknown, done: () => void) => done()
    app.addHook('preHandler', noop)
    app.get('/v1/widgets', { preHandler: noop }, async () => body())
    await app.ready()
    return { handler: handler() }
  }
  if (mode === 'limiter') {
    await app.register(rateLimit, {
      max: UNREACHED,
      timeWindow: 60_000,
      keyGenerator: (request) => String(request.headers['x-customer-id'] ?? ''),
    })
  }
  app.get('/v1/widgets', async () => body())
  await app.ready()
  return { handler: handler() }
}
