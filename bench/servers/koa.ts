/**
 * The Koa 3 + @koa/router servers of the benchmark: bare, the meter and its diagnostic rows,
 * koa-ratelimit in memory keyed by customer, the official SDK pattern, streamed bodies.
 */
import { Readable } from 'node:stream'
import Router from '@koa/router'
import { Planship } from '@planship/fetch'
import Koa from 'koa'
import ratelimit from 'koa-ratelimit'
import { createMeter } from '../../src/index.js'
import { type BenchServer, body, meterOptions, type Mode, type PlanshipTarget, UNREACHED } from './index.js'

/** A streamed body: 8 SSE events, counted as they are pulled (what a streaming route bills). */
const STREAM_CHUNKS = 8
function streamBody(sent: { chunks: number }): Readable {
  return Readable.from(
    (function* () {
      for (; sent.chunks < STREAM_CHUNKS; sent.chunks++) yield `data: {"chunk":${sent.chunks}}\n\n`
    })(),
  )
}

export function createKoaServer(mode: Mode, target: PlanshipTarget): BenchServer {
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
  } else if (mode === 'limiter') {
    app.use(
      ratelimit({
        driver: 'memory',
        db: new Map(),
        duration: 60_000,
        max: UNREACHED,
        id: (ctx) => ctx.get('x-customer-id'),
      }),
    )
    router.get('/v1/widgets', (ctx) => {
      ctx.body = body()
    })
  } else if (mode === 'meter' || mode === 'meter-quiet' || mode === 'meter-no-headers' || mode === 'meter-stream') {
    const meter = createMeter({
      ...meterOptions(mode, target),
      identify: (ctx) => ctx.get('x-customer-id') || undefined,
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
    return { handler: app.callback(), meter }
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
  return { handler: app.callback() }
}
