/** The completions endpoint on Koa: the body is a stream, billed for the tokens it sent. */
import { Readable } from 'node:stream'
import Router from '@koa/router'
import Koa from 'koa'
import { createMeter, type Meter, type MeterOptions, type PlanshipState } from '../../src/index.js'
import { completionEvents, completionRequest, ESTIMATE } from './model.js'

type State = PlanshipState & { sent: { tokens: number } }

export function createCompletionsApp(
  planship: Pick<MeterOptions, 'planship' | 'productSlug'> & Partial<MeterOptions>,
): { app: Koa<State>; meter: Meter } {
  const meter = createMeter({ identify: (ctx) => ctx.get('x-customer-id') || undefined, ...planship })
  const app = new Koa<State>()
  const router = new Router<State>()
  router.get(
    '/v1/completions',
    meter.consume('tokens', { cost: ESTIMATE, usage: (ctx) => ctx.state.sent.tokens }),
    (ctx) => {
      const sent = (ctx.state.sent = { tokens: 0 })
      const request = completionRequest(new URLSearchParams(ctx.querystring))
      ctx.type = 'text/event-stream'
      ctx.set('Cache-Control', 'no-cache')
      ctx.body = Readable.from(completionEvents(request, ctx.state.planship.reservations['tokens']!, sent))
    },
  )
  // A client that leaves mid-stream ends Koa's pipeline with a premature close: billed, not an error.
  app.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'ERR_STREAM_PREMATURE_CLOSE') console.error(error)
  })
  app.use(meter.middleware())
  app.use(router.routes())
  return { app, meter }
}
