/**
 * The servers the benchmark compares, per framework, each serving the same small JSON route
 * `GET /v1/widgets` for the customer named by `x-customer-id`: bare; behind the meter; behind the
 * framework's own in-memory limiter keyed by customer (a limiter that never leaves the process,
 * the peer anchor); and on Koa the diagnostic rows (reporting off, headers off, the official SDK
 * pattern, streamed bodies). Each framework's module is imported only when it is selected, so a
 * framework whose meter is missing (an adapter not merged yet) costs the others nothing.
 */
import { existsSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { MeterCore } from '../../src/meter.js'

export const FRAMEWORKS = ['koa', 'express', 'fastify', 'hono'] as const
export type Framework = (typeof FRAMEWORKS)[number]

/**
 * `meter-quiet` is the meter with reporting off, `meter-no-headers` without RateLimit headers
 * (the difference is what they cost), `official` the pattern of Planship's own examples,
 * `*-stream` a streamed body (8 SSE events, billed for what was sent once the response is over),
 * `bare-layers` the bare route behind two no-op layers (one global, one on the route), where
 * the meter mounts its two: what any two layers cost, so that what is left is the meter's own.
 */
export const MODES = [
  'bare',
  'meter',
  'meter-quiet',
  'meter-no-headers',
  'limiter',
  'official',
  'bare-stream',
  'meter-stream',
  'bare-layers',
] as const
export type Mode = (typeof MODES)[number]

/** The rows each framework has: the diagnostic ones are Koa's, and Express's where its adapter is measured. */
export const MODES_OF: Record<Framework, readonly Mode[]> = {
  koa: ['bare', 'meter', 'meter-quiet', 'meter-no-headers', 'limiter', 'official', 'bare-stream', 'meter-stream'],
  express: ['bare', 'bare-layers', 'meter', 'meter-quiet', 'meter-no-headers', 'limiter'],
  fastify: ['bare', 'bare-layers', 'meter', 'meter-quiet', 'meter-no-headers', 'limiter'],
  hono: ['bare', 'bare-layers', 'meter', 'meter-quiet', 'meter-no-headers', 'limiter'],
}

/** Every mode but `bare`, `limiter` and `official` runs the framework's meter. */
export const usesMeter = (mode: Mode) => mode.startsWith('meter')

/** Whether this checkout has `framework`'s meter (src/<framework>/index.ts). */
export function hasMeter(framework: Framework): boolean {
  return existsSync(new URL(`../../src/${framework}/index.ts`, import.meta.url))
}

export interface PlanshipTarget {
  url: string
  clientId: string
  clientSecret: string
  productSlug: string
}

/** A server under test: Node's request listener of its app, served over HTTP or driven in process. */
export interface BenchServer {
  handler: (req: IncomingMessage, res: ServerResponse) => void
  meter?: Pick<MeterCore, 'close' | 'flush'>
}

export const body = () => ({ id: 42, name: 'widget', tags: ['a', 'b'] })

/** A limit no bench run reaches: the limiters count, and never deny. */
export const UNREACHED = 1_000_000_000

/** The options every framework's meter gets but `identify`: the same meter, only the adapter differs. */
export function meterOptions(mode: Mode, target: PlanshipTarget) {
  return {
    productSlug: target.productSlug,
    planship: { baseUrl: target.url, clientId: target.clientId, clientSecret: target.clientSecret },
    logger: {},
    ...(mode === 'meter-quiet' || process.env['BENCH_QUIET'] === '1' ? { reporting: { flushIntervalMs: 1e9 } } : {}),
    ...(mode === 'meter-no-headers' ? { headers: false as const } : {}),
  }
}

export async function createServer(framework: Framework, mode: Mode, target: PlanshipTarget): Promise<BenchServer> {
  if (!MODES_OF[framework].includes(mode)) throw new TypeError(`bench: ${framework} has no ${mode} server`)
  switch (framework) {
    case 'koa':
      return (await import('./koa.js')).createKoaServer(mode, target)
    case 'express':
      return (await import('./express.js')).createExpressServer(mode, target)
    case 'fastify':
      return (await import('./fastify.js')).createFastifyServer(mode, target)
    case 'hono':
      return (await import('./hono.js')).createHonoServer(mode, target)
  }
}
