import assert from 'node:assert/strict'
import { once } from 'node:events'
import type http from 'node:http'
import { Readable } from 'node:stream'
import Router from '@koa/router'
import express, { type ErrorRequestHandler } from 'express'
import { Hono } from 'hono'
import { streamSSE } from 'hono/streaming'
import Fastify, { type FastifyRequest } from 'fastify'
import Koa from 'koa'
import type { MeterCore, MeterEvent, PlanshipState } from '../../src/index.js'
import type { AbortPolicy, ExpressMeter } from '../../src/express/index.js'
import type { Meter } from '../../src/index.js'
import { startExpressHarness } from '../helpers/express.js'
import { served, startHonoHarness } from '../helpers/hono.js'
import type { HonoMeter, PlanshipVariables } from '../../src/hono/index.js'
import { errorsLogger, startFastifyHarness } from '../helpers/fastify.js'
import type { FastifyMeter } from '../../src/fastify/index.js'
import { eachHarness, type Harness, startHarness } from '../helpers/harness.js'
import { abandon, listen, readStream, sseEvents, streamPlan, tokensFixture } from '../helpers/streams.js'

/** What a test app exposes: its server, the responses' ends, what the last stream sent, errors seen. */
interface StreamApp {
  server: http.Server
  /** Resolves once every response so far is over and settled. */
  over(): Promise<void>
  sent: { tokens: number }
  errors: unknown[]
  /** One per request the app has seen (its response's end). */
  ends: Promise<unknown>[]
}

/**
 * GETs `path` and goes away while its handler works: once the app has seen the request (a loaded
 * machine may take a while to get there), and 50 ms more. `&leaving` has `/slow` work until then.
 */
async function leaveMidHandler(app: StreamApp, path: string, customerId: string): Promise<void> {
  const seen = app.ends.length
  await abandon(app.server, `${path}&leaving`, customerId, async () => {
    for (let i = 0; i < 500 && app.ends.length === seen; i++) await sleep(10)
    await sleep(50)
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const costOf = (query: URLSearchParams) => Number(query.get('cost') ?? 1)
/**
 * `/slow`'s work: 300 ms, or with `?leaving` until its client is gone, so that the client leaves
 * mid-handler however late a loaded machine runs the timers.
 */
const slowWork = (res: http.ServerResponse, url: string | undefined) =>
  new URL(url ?? '/', 'http://localhost').searchParams.has('leaving') ? once(res, 'close') : sleep(300)

/**
 * Routes: `/sse` streams SSE events and bills the tokens it sent; `/slow` answers JSON after
 * 300 ms and bills its cost; `/json` answers at once and bills its cost of 3.
 */
function koaApp(meter: Meter, onAbort: AbortPolicy | undefined): Promise<StreamApp> {
  const app = new Koa<PlanshipState & { sent: { tokens: number } }>()
  app.silent = true
  const state: Omit<StreamApp, 'server'> & { ends: Promise<unknown>[] } = {
    ends: [],
    over: () => Promise.all(state.ends).then(() => {}),
    sent: { tokens: 0 },
    errors: [],
  }
  app.on('error', (error) => state.errors.push(error))
  app.use((ctx, next) => {
    state.ends.push(once(ctx.res, 'close'))
    return next()
  })
  app.use(meter.middleware())
  const router = new Router<PlanshipState & { sent: { tokens: number } }>()
  const options = { cost: (ctx: Koa.Context) => costOf(new URLSearchParams(ctx.querystring)), onAbort }
  router.get('/sse', meter.consume('tokens', { ...options, usage: (ctx) => ctx.state.sent.tokens }), (ctx) => {
    const sent = (ctx.state.sent = state.sent = { tokens: 0 })
    ctx.type = 'text/event-stream'
    const plan = streamPlan(new URLSearchParams(ctx.querystring))
    ctx.body = Readable.from(sseEvents(plan, ctx.state.planship.reservations.tokens, sent, ctx.res))
  })
  router.get('/slow', meter.consume('tokens', options), async (ctx) => {
    await slowWork(ctx.res, ctx.url)
    ctx.body = { ok: true }
  })
  router.get('/json', meter.consume('tokens', { cost: 3 }), (ctx) => {
    ctx.body = { ok: true }
  })
  app.use(router.routes())
  return listen(app).then((server) => Object.assign(state, { server }))
}

function expressApp(meter: ExpressMeter, onAbort: AbortPolicy | undefined): Promise<StreamApp> {
  const app = express()
  app.set('env', 'test') // Express's own handler of the mid-stream error then logs nothing
  const state: Omit<StreamApp, 'server'> & { ends: Promise<unknown>[] } = {
    ends: [],
    over: () => Promise.all(state.ends).then(() => {}),
    sent: { tokens: 0 },
    errors: [],
  }
  app.use((_req, res, next) => {
    state.ends.push(once(res, 'close'))
    next()
  })
  app.use(meter.middleware())
  const options = { cost: (req: express.Request) => costOf(new URLSearchParams(req.url.split('?')[1])), onAbort }
  app.get(
    '/sse',
    meter.consume('tokens', {
      ...options,
      usage: (_req, res) => (res.locals as { sent: { tokens: number } }).sent.tokens,
    }),
    async (req, res, next) => {
      const sent = ((res.locals as { sent?: { tokens: number } }).sent = state.sent = { tokens: 0 })
      const events = sseEvents(
        streamPlan(new URLSearchParams(req.url.split('?')[1])),
        res.locals.planship.reservations.tokens,
        sent,
        res,
      )
      res.on('close', () => void events.return(undefined))
      res.type('text/event-stream')
      try {
        for await (const event of events) res.write(event)
        res.end()
      } catch (error) {
        next(error)
      }
    },
  )
  app.get('/slow', meter.consume('tokens', options), async (req, res) => {
    await slowWork(res, req.originalUrl)
    res.json({ ok: true })
  })
  app.get('/json', meter.consume('tokens', { cost: 3 }), (_req, res) => void res.json({ ok: true }))
  const seen: ErrorRequestHandler = (error, _req, res, next) => {
    state.errors.push(error)
    if (res.headersSent) return next(error) // Express's own handling ends the broken response
    res.status(500).json({ error: 'failed' })
  }
  app.use(seen)
  return listen(app).then((server) => Object.assign(state, { server }))
}

/**
 * On Hono (served by @hono/node-server), `/sse` streams with `streamSSE`: an error mid-stream
 * reaches its `onError`, Hono's only way to see one (the response was returned long before, so
 * `app.onError` cannot), which then ends the stream with an `error` event.
 */
function honoApp(meter: HonoMeter, onAbort: AbortPolicy | undefined): Promise<StreamApp> {
  type Variables = PlanshipVariables & { sent: { tokens: number } }
  const app = new Hono<{ Variables: Variables }>()
  const state: Omit<StreamApp, 'server'> & { ends: Promise<unknown>[] } = {
    ends: [],
    over: () => Promise.all(state.ends).then(() => {}),
    sent: { tokens: 0 },
    errors: [],
  }
  app.use((c, next) => {
    state.ends.push(once((c.env as { outgoing: http.ServerResponse }).outgoing, 'close'))
    return next()
  })
  app.use(meter.middleware())
  const options = {
    cost: (c: { req: { query(name: string): string | undefined } }) => Number(c.req.query('cost') ?? 1),
    onAbort,
  }
  app.get(
    '/sse',
    meter.consume('tokens', { ...options, usage: (c) => (c.get('sent') as { tokens: number }).tokens }),
    (c) => {
      const sent = (state.sent = { tokens: 0 })
      c.set('sent', sent)
      const plan = streamPlan(new URL(c.req.url).searchParams)
      // What the generator produced; `sent` counts what was written before the client left
      // (the generator may be one chunk into its next step when the stream is aborted).
      const produced = { tokens: 0 }
      const events = sseEvents(plan, c.var.planship.reservations['tokens'], produced)
      return streamSSE(
        c,
        async (stream) => {
          stream.onAbort(() => void events.return(undefined))
          for await (const event of events) {
            if (stream.aborted) break
            await stream.write(event)
            if (!stream.aborted) sent.tokens = produced.tokens
          }
        },
        async (error) => {
          state.errors.push(error)
        },
      )
    },
  )
  app.get('/slow', meter.consume('tokens', options), async (c) => {
    await slowWork((c.env as { outgoing: http.ServerResponse }).outgoing, c.req.url)
    return c.json({ ok: true })
  })
  app.get('/json', meter.consume('tokens', { cost: 3 }), (c) => c.json({ ok: true }))
  app.onError((error, c) => {
    state.errors.push(error)
    return c.json({ error: 'failed' }, 500)
  })
  return listen(served(app)).then((server) => Object.assign(state, { server }))
}

/**
 * The same routes on Fastify. `/sse` hands the stream to `reply.send()` (`sse: 'send'`), or
 * hijacks the reply and writes the events to `reply.raw` itself (`sse: 'hijack'`), as an SSE
 * writer does. Errors reach Fastify's logger (a stream's, or a hijacked handler's rejection).
 */
async function fastifyApp(meter: FastifyMeter, onAbort: AbortPolicy | undefined, sse: 'send' | 'hijack') {
  const state: Omit<StreamApp, 'server'> & { ends: Promise<unknown>[] } = {
    ends: [],
    over: () => Promise.all(state.ends).then(() => {}),
    sent: { tokens: 0 },
    errors: [],
  }
  const app = Fastify({ loggerInstance: errorsLogger(state.errors) })
  app.addHook('onRequest', (_request, reply, done) => {
    state.ends.push(once(reply.raw, 'close'))
    done()
  })
  await app.register(meter.plugin)
  const query = (request: FastifyRequest) => new URLSearchParams(request.url.split('?')[1])
  const options = { cost: (request: FastifyRequest) => costOf(query(request)), onAbort }
  const sentBy = new WeakMap<FastifyRequest, { tokens: number }>()
  const usage = (request: FastifyRequest) => sentBy.get(request)?.tokens ?? 0
  app.get('/sse', { preHandler: meter.consume('tokens', { ...options, usage }) }, async (request, reply) => {
    const sent = (state.sent = { tokens: 0 })
    sentBy.set(request, sent)
    const events = sseEvents(streamPlan(query(request)), request.planship?.reservations['tokens'], sent, reply.raw)
    if (sse === 'send') return reply.type('text/event-stream').send(Readable.from(events))
    reply.hijack()
    const res = reply.raw
    res.on('close', () => void events.return(undefined))
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    try {
      for await (const event of events) res.write(event)
      res.end()
    } catch (error) {
      res.destroy() // a hijacked response is the handler's to end; the rejection reaches Fastify's log
      throw error
    }
  })
  app.get('/slow', { preHandler: meter.consume('tokens', options) }, async (request, reply) => {
    await slowWork(reply.raw, request.url)
    return { ok: true }
  })
  app.get('/json', { preHandler: meter.consume('tokens', { cost: 3 }) }, async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  return Object.assign(state, { server: app.server })
}

type Start = (
  onEvent: (event: MeterEvent) => void,
  onAbort?: AbortPolicy,
) => Promise<{ h: Harness<MeterCore, unknown>; app: StreamApp }>

function streaming(start: Start) {
  let app: StreamApp
  const harness = eachHarness(async (onEvent) => {
    const started = await start(onEvent)
    app = started.app
    const close = started.h.close.bind(started.h)
    return Object.assign(started.h, {
      close: async () => {
        app.server.closeAllConnections()
        app.server.close()
        await close()
      },
    })
  })
  const billed = async (h: Harness<MeterCore, unknown>, customerId: string) => {
    await app.over()
    await h.meter.flush()
    return h.emu.recordedUsage({ customerId, meteringId: 'tokens' })
  }

  it('bills a full stream exactly what it streamed, read once its last byte is written, with an overage event', async () => {
    const h = harness()
    h.emu.createCustomer('full', 'basic')
    const read = await readStream(app.server, '/sse?chunks=10&tokens=3&cost=1', 'full')
    assert.equal(read.status, 200)
    assert.equal(read.chunks, 10)
    assert.equal(await billed(h, 'full'), 30)
    const overage = harness.events.find((event) => event.type === 'overage')
    assert.deepEqual(overage, {
      type: 'overage',
      customerId: 'full',
      meteringId: 'tokens',
      reserved: 1,
      usage: 30,
      over: 29,
    })
  })

  it('bills a client gone mid-stream what was sent to it, not 0 and not the whole', async () => {
    const h = harness()
    h.emu.createCustomer('leaver', 'basic')
    const read = await readStream(app.server, '/sse?chunks=20&tokens=3&delayMs=20&cost=1', 'leaver', 6)
    assert.equal(read.chunks, 6)
    const units = await billed(h, 'leaver')
    assert.equal(units, app.sent.tokens, 'billed what the handler had sent when the client left')
    assert.ok(units >= 18 && units <= 21, `billed ${units}: the 6 chunks read, and at most one more in flight`)
  })

  it('releases a client gone before any of the response was written, and bills a plain JSON route its cost', async () => {
    const h = harness()
    h.emu.createCustomer('impatient', 'basic')
    const { server } = app
    await readStream(server, '/json', 'impatient')
    await leaveMidHandler(app, '/slow?cost=7', 'impatient') // gone while the handler still works
    await sleep(400) // the handler finishes later: still not billed
    assert.equal(await billed(h, 'impatient'), 3)
  })

  it('stops a stream at the quota through extend(): exactly 100 of 100 billed, then 429', async () => {
    const h = harness()
    h.emu.createCustomer('heavy', 'basic')
    const read = await readStream(app.server, '/sse?chunks=50&tokens=5&block=10&cost=10', 'heavy')
    assert.equal(read.chunks, 20)
    assert.ok(read.quotaExceeded, 'the stream ends with a quota_exceeded event')
    assert.equal(await billed(h, 'heavy'), 100)
    const after = await readStream(app.server, '/sse?chunks=1&tokens=5&cost=10', 'heavy')
    assert.equal(after.status, 429)
  })

  it('delivers exactly the quota over two concurrent streams of one customer', async () => {
    const h = harness()
    h.emu.createCustomer('twice', 'basic')
    const reads = await Promise.all(
      [0, 1].map(() => readStream(app.server, '/sse?chunks=50&tokens=5&block=10&cost=10&delayMs=2', 'twice')),
    )
    const delivered = reads.reduce((sum, read) => sum + read.chunks * 5, 0)
    assert.equal(delivered, 100)
    assert.ok(reads.every((read) => read.quotaExceeded))
    assert.equal(await billed(h, 'twice'), 100)
  })

  it('bills a stream that errors mid-response as an abort, and the error reaches the framework', async () => {
    const h = harness()
    h.emu.createCustomer('crash', 'basic')
    const read = await readStream(app.server, '/sse?chunks=10&tokens=3&failAt=4&delayMs=5', 'crash')
    assert.equal(read.chunks, 4)
    assert.equal(await billed(h, 'crash'), 12)
    assert.ok(app.errors.length > 0, 'the framework saw the error')
    for (const error of app.errors) assert.match(String(error), /crashed mid-stream/)
  })

  describe("with onAbort: 'release' and 'bill'", () => {
    it("'release' bills a client gone mid-stream nothing", async () => {
      const h = harness()
      h.emu.createCustomer('released', 'basic')
      const { h: other, app: released } = await start(() => {}, 'release')
      try {
        other.emu.createCustomer('released', 'basic')
        await readStream(released.server, '/sse?chunks=20&tokens=3&delayMs=20&cost=1', 'released', 3)
        await released.over()
        await other.meter.flush()
        assert.equal(other.emu.recordedUsage({ customerId: 'released', meteringId: 'tokens' }), 0)
      } finally {
        released.server.closeAllConnections()
        released.server.close()
        await other.close()
      }
    })

    it("'bill' bills a client gone before any byte the usage read then", async () => {
      const { h, app: billing } = await start(() => {}, 'bill')
      try {
        h.emu.createCustomer('billed', 'basic')
        // Its data cached first: a cold decision in a fresh process can outlast the 50 ms, and the
        // client would then leave before admission, not while the handler works.
        const warm = await h.meter.reserve('billed', 'tokens', { cost: 1 })
        assert.ok(warm.allowed)
        await warm.release()
        await leaveMidHandler(billing, '/slow?cost=7', 'billed')
        await billing.over()
        await h.meter.flush()
        assert.equal(h.emu.recordedUsage({ customerId: 'billed', meteringId: 'tokens' }), 7)
      } finally {
        billing.server.close()
        await h.close()
      }
    })
  })
}

describe('Koa: streamed responses', () =>
  streaming(async (onEvent, onAbort) => {
    const h = await startHarness({ emulator: { fixture: tokensFixture }, meter: { onEvent } })
    return { h, app: await koaApp(h.meter, onAbort) }
  }))

describe('Express: streamed responses', () =>
  streaming(async (onEvent, onAbort) => {
    const h = await startExpressHarness({ emulator: { fixture: tokensFixture }, meter: { onEvent } })
    return { h, app: await expressApp(h.meter, onAbort) }
  }))

describe('Hono: streamed responses', () =>
  streaming(async (onEvent, onAbort) => {
    const h = await startHonoHarness({ emulator: { fixture: tokensFixture }, meter: { onEvent } })
    return { h, app: await honoApp(h.meter, onAbort) }
  }))

for (const sse of ['send', 'hijack'] as const)
  describe(`Fastify: streamed responses (${sse === 'send' ? 'reply.send(stream)' : 'a hijacked SSE writer'})`, () =>
    streaming(async (onEvent, onAbort) => {
      const h = await startFastifyHarness({ emulator: { fixture: tokensFixture }, meter: { onEvent } })
      return { h, app: await fastifyApp(h.meter, onAbort, sse) }
    }))

describe('Koa: responses written by the handler itself, and clients gone mid-handler', () => {
  const harness = eachHarness(() => startHarness({ emulator: { fixture: tokensFixture } }))

  it('bills a response the handler writes to ctx.res (ctx.respond = false) when it is over', async () => {
    const h = harness()
    h.emu.createCustomer('raw', 'basic')
    const app = new Koa<PlanshipState & { sent: number }>()
    app.use(h.meter.middleware())
    let finished: Promise<unknown> = Promise.resolve()
    app.use(h.meter.consume('tokens', { cost: 4, usage: (ctx) => ctx.state.sent }))
    app.use((ctx) => {
      ctx.respond = false
      ctx.state.sent = 0
      const res = ctx.res
      finished = once(res, 'close')
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      // Written after the handler returned, as an SSE writer does.
      const timer = setInterval(() => {
        ctx.state.sent += 2
        res.write(`data: {"chunk":${ctx.state.sent / 2}}\n\n`)
        if (ctx.state.sent === 14) {
          clearInterval(timer)
          res.end()
        }
      }, 2)
    })
    const server = await listen(app)
    try {
      const read = await readStream(server, '/', 'raw')
      assert.equal(read.chunks, 7)
      await finished
      await h.meter.flush()
      assert.equal(h.emu.recordedUsage({ customerId: 'raw', meteringId: 'tokens' }), 14)
    } finally {
      server.close()
    }
  })

  it('answers extend() false once the client has left mid-handler, and bills nothing', async () => {
    const h = harness()
    h.emu.createCustomer('gone', 'basic')
    const app = new Koa<PlanshipState>()
    app.use(h.meter.middleware())
    const extensions: boolean[] = []
    let handled: () => void = () => {}
    const done = new Promise<void>((resolve) => (handled = resolve))
    let extendedOnce: () => void = () => {}
    const first = new Promise<void>((resolve) => (extendedOnce = resolve))
    app.use(h.meter.consume('tokens', { cost: 10 }))
    app.use(async (ctx) => {
      const reservation = ctx.state.planship.reservations['tokens']!
      extensions.push(await reservation.extend(10))
      extendedOnce()
      // The client leaves meanwhile: the socket is closed once this process has seen it.
      for (let i = 0; i < 500 && !ctx.res.socket?.destroyed; i++) await sleep(10)
      extensions.push(await reservation.extend(10))
      ctx.body = { ok: true }
      handled()
    })
    const server = await listen(app)
    try {
      await abandon(server, '/', 'gone', () => first)
      await done
      await sleep(20)
      assert.deepEqual(extensions, [true, false])
      await h.meter.flush()
      assert.equal(h.emu.recordedUsage({ customerId: 'gone', meteringId: 'tokens' }), 0)
      const whole = await h.meter.reserve('gone', 'tokens', { cost: 100 })
      assert.ok(whole.allowed, 'every unit came back')
      await whole.release()
    } finally {
      server.close()
    }
  })
})
