/** The three servers the benchmark compares, each serving the same small JSON route. */
import { Readable } from 'node:stream'
import Router from '@koa/router'
import { Planship } from '@planship/fetch'
import Koa from 'koa'
import ratelimit from 'koa-ratelimit'
import { createMeter, type Meter } from '../src/index.js'

/**
 * A bare Koa route; the meter; the meter with reporting off (a diagnostic row); the meter
 * without RateLimit headers (the difference is what they cost); koa-ratelimit with its in-memory
 * driver keyed by customer (a limiter that never leaves the process: the peer anchor); the
 * pattern of Planship's own examples.
 */
export type Mode =
  'bare' | 'meter' | 'meter-quiet' | 'meter-no-headers' | 'ratelimit' | 'official' | 'bare-stream' | 'meter-stream'

export interface PlanshipTarget {
  url: string
  clientId: string
  clientSecret: string
  productSlug: string
}

const body = () => ({ id: 42, name: 'widget', tags: ['a', 'b'] })

/** A streamed body: 8 SSE events, counted as they are pulled (what a streaming route bills). */
const STREAM_CHUNKS = 8
function streamBody(sent: { chunks: number }): Readable {
  return Readable.from(
    (function* () {
      for (; sent.chunks < STREAM_CHUNKS; sent.chunks++) yield `data: {"chunk":${sent.chunks}}\n\n`
    })(),
  )
}

export function createServer(mode: Mode, target: PlanshipTarget): { app: Koa; meter?: Meter } {
  const app = new Koa()
  const router = new Router()
  if (mode === 'bare') {
    router.get('/v1/widgets', (ctx) => {
      ctx.body = body()
    })
  } else if (mode === 'bare-stream') {
    router.get('/v1/widgets', (ctx) => {
      ctx.type = 'text/event-stream'
      ctx.body = streamBody({ chunks: 0 })
    })
  } else if (mode === 'ratelimit') {
    app.use(
      ratelimit({
        driver: 'memory',
        db: new Map(),
        duration: 60_000,
        max: 1_000_000_000,
        id: (ctx) => ctx.get('x-customer-id'),
      }),
    )
    router.get('/v1/widgets', (ctx) => {
      ctx.body = body()
    })
  } else if (mode === 'meter' || mode === 'meter-quiet' || mode === 'meter-no-headers' || mode === 'meter-stream') {
    const meter = createMeter({
      productSlug: target.productSlug,
      planship: { baseUrl: target.url, clientId: target.clientId, clientSecret: target.clientSecret },
      identify: (ctx) => ctx.get('x-customer-id') || undefined,
      logger: {},
      ...(mode === 'meter-quiet' ? { reporting: { flushIntervalMs: 1e9 } } : {}),
      ...(mode === 'meter-no-headers' ? { headers: false as const } : {}),
    })
    app.use(meter.middleware())
    if (mode === 'meter-stream') {
      // Reserves a chunk's worth, bills the chunks the stream sent, read once it is over.
      const sentOf = (ctx: Koa.Context) => (ctx.state as { sent: { chunks: number } }).sent.chunks
      router.get('/v1/widgets', meter.consume('api-call', { usage: sentOf }), (ctx) => {
        const sent = { chunks: 0 }
        ctx.state['sent'] = sent
        ctx.type = 'text/event-stream'
        ctx.body = streamBody(sent)
      })
    } else {
      router.get('/v1/widgets', meter.consume('api-call'), (ctx) => {
        ctx.body = body()
      })
    }
    app.use(router.routes())
    return { app, meter }
  } else {
    // The pattern of Planship's own examples: read entitlements before, report usage after, every request.
    const planship = new Planship(
      target.productSlug,
      { clientId: target.clientId, clientSecret: target.clientSecret },
      { baseUrl: target.url },
    )
    router.get('/v1/widgets', async (ctx) => {
      const customer = ctx.get('x-customer-id')
      const entitlements = await planship.getEntitlements(customer)
      const left = entitlements['api-calls']
      if (typeof left !== 'number' || (left !== -1 && left <= 0)) {
        ctx.status = 429
        return
      }
      ctx.body = body()
      planship.reportUsage(customer, 'api-call', 1).catch(() => {})
    })
  }
  app.use(router.routes())
  return { app }
}
