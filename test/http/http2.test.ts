import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { serve } from '@hono/node-server'
import Router from '@koa/router'
import Fastify, { type FastifyRequest } from 'fastify'
import { Hono } from 'hono'
import { stream } from 'hono/streaming'
import Koa from 'koa'
import type { AbortPolicy, FastifyMeter } from '../../src/fastify/index.js'
import type { HonoMeter, PlanshipVariables } from '../../src/hono/index.js'
import type { Meter, MeterCore, MeteredReservation, PlanshipState } from '../../src/index.js'
import { startFastifyHarness } from '../helpers/fastify.js'
import { eachHarness, eventually, type Harness, startHarness } from '../helpers/harness.js'
import { startHonoHarness } from '../helpers/hono.js'
import { clientGone } from '../../src/http/response-end.js'
import { sseEvents, streamPlan, tokensFixture } from '../helpers/streams.js'

/**
 * An app over cleartext HTTP/2 (Node's compatibility API): `/json` bills 3; `/big` bills 3, reads
 * the request (an upload) and answers {@link BIG} characters; `/sse` streams SSE events and bills the tokens it sent; `/wait` (cost 5, HEAD too) waits for its client to leave,
 * then asks for 5 more units, keeps the answer in `extended`, and answers once `answer()` is called.
 */
interface H2App {
  url: string
  /** Resolves once the stream of every request so far has closed. */
  over(): Promise<void>
  /** `/wait` requests that are waiting for their client to leave. */
  waiting: { count: number }
  extended: boolean[]
  answer(): void
  close(): Promise<void>
}

type Serve<M> = (meter: M, onAbort: AbortPolicy | undefined) => Promise<H2App>

/** What every app does around its routes: each response's end, kept for `over()`, and `/wait`. */
function h2State() {
  const ends: Promise<unknown>[] = []
  const waiting = { count: 0 }
  const extended: boolean[] = []
  let answer = () => {}
  const answering = new Promise<void>((resolve) => (answer = resolve))
  return {
    ends,
    waiting,
    extended,
    answer,
    over: () => Promise.all(ends).then(() => {}),
    /**
     * Waits for the client of `res` to cancel its stream (its stream's close: Node emits no
     * 'close' on a cancelled HEAD response until it is ended), then asks `reservation` for 5 more units.
     */
    async extendOnceGone(res: http2.Http2ServerResponse, reservation: MeteredReservation | undefined) {
      waiting.count++
      await once(res.stream, 'close')
      extended.push((await reservation?.extend(5)) ?? true)
      await answering
    },
  }
}

/** `/big`'s answer: more than a stream's initial flow-control window, so it goes out in several writes. */
const BIG = 'x'.repeat(200_000)

const urlOf = (server: { address(): unknown }) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`
const query = (url: string) => new URLSearchParams(url.split('?')[1])

const fastifyApp: Serve<FastifyMeter> = async (meter, onAbort) => {
  const state = h2State()
  const app = Fastify({ http2: true })
  app.addHook('onRequest', (_request, reply, done) => {
    state.ends.push(once(reply.raw.stream, 'close'))
    done()
  })
  await app.register(meter.plugin)
  const sentBy = new WeakMap<object, { tokens: number }>()
  const usage = (request: FastifyRequest) => sentBy.get(request)?.tokens ?? 0
  app.get('/json', { preHandler: meter.consume('tokens', { cost: 3, onAbort }) }, async () => ({ ok: true }))
  app.get('/big', { preHandler: meter.consume('tokens', { cost: 3, onAbort }) }, async (request) => {
    request.raw.resume()
    return BIG
  })
  app.get('/sse', { preHandler: meter.consume('tokens', { onAbort, usage }) }, async (request, reply) => {
    const sent = { tokens: 0 }
    sentBy.set(request, sent)
    const events = sseEvents(streamPlan(query(request.url)), request.planship?.reservations['tokens'], sent)
    return reply.type('text/event-stream').send(Readable.from(events))
  })
  app.get('/wait', { preHandler: meter.consume('tokens', { cost: 5, onAbort }) }, async (request, reply) => {
    await state.extendOnceGone(reply.raw, request.planship?.reservations['tokens'])
    return { ok: true }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { ...state, url: urlOf(app.server), close: () => app.close() }
}

const koaApp: Serve<Meter> = async (meter, onAbort) => {
  const state = h2State()
  const app = new Koa<PlanshipState & { sent: { tokens: number } }>()
  app.silent = true
  app.use((ctx, next) => {
    state.ends.push(once((ctx.res as unknown as http2.Http2ServerResponse).stream, 'close'))
    return next()
  })
  app.use(meter.middleware())
  const router = new Router<PlanshipState & { sent: { tokens: number } }>()
  router.get('/json', meter.consume('tokens', { cost: 3, onAbort }), (ctx) => {
    ctx.body = { ok: true }
  })
  router.get('/big', meter.consume('tokens', { cost: 3, onAbort }), (ctx) => {
    ctx.req.resume()
    ctx.body = BIG
  })
  router.get('/sse', meter.consume('tokens', { onAbort, usage: (ctx) => ctx.state.sent.tokens }), (ctx) => {
    const sent = (ctx.state.sent = { tokens: 0 })
    ctx.type = 'text/event-stream'
    ctx.body = Readable.from(sseEvents(streamPlan(query(ctx.url)), ctx.state.planship.reservations['tokens'], sent))
  })
  router.get('/wait', meter.consume('tokens', { cost: 5, onAbort }), async (ctx) => {
    const res = ctx.res as unknown as http2.Http2ServerResponse
    await state.extendOnceGone(res, ctx.state.planship.reservations['tokens'])
    ctx.body = { ok: true }
  })
  app.use(router.routes())
  const server = http2.createServer(app.callback() as unknown as Parameters<typeof http2.createServer>[0])
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { ...state, url: urlOf(server), close: () => closeServer(server) }
}

const honoApp: Serve<HonoMeter> = async (meter, onAbort) => {
  const state = h2State()
  const app = new Hono<{ Variables: PlanshipVariables & { sent: { tokens: number } } }>()
  const outgoing = (env: unknown) => (env as { outgoing: http2.Http2ServerResponse }).outgoing
  app.use((c, next) => {
    state.ends.push(once(outgoing(c.env).stream, 'close'))
    return next()
  })
  app.use(meter.middleware())
  app.get('/json', meter.consume('tokens', { cost: 3, onAbort }), (c) => c.json({ ok: true }))
  app.get('/big', meter.consume('tokens', { cost: 3, onAbort }), (c) => {
    ;(c.env as { incoming: http2.Http2ServerRequest }).incoming.resume()
    return c.text(BIG)
  })
  app.get('/sse', meter.consume('tokens', { onAbort, usage: (c) => c.get('sent').tokens }), (c) => {
    const sent = { tokens: 0 }
    c.set('sent', sent)
    const produced = { tokens: 0 }
    const events = sseEvents(streamPlan(query(c.req.url)), c.var.planship.reservations['tokens'], produced)
    c.header('content-type', 'text/event-stream')
    return stream(c, async (body) => {
      body.onAbort(() => void events.return(undefined))
      for await (const event of events) {
        if (body.aborted) break
        await body.write(event)
        if (!body.aborted) sent.tokens = produced.tokens // what was written, not what was produced
      }
    })
  })
  app.get('/wait', meter.consume('tokens', { cost: 5, onAbort }), async (c) => {
    await state.extendOnceGone(outgoing(c.env), c.var.planship.reservations['tokens'])
    return c.json({ ok: true })
  })
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1', createServer: http2.createServer })
  await once(server, 'listening')
  return { ...state, url: urlOf(server), close: () => closeServer(server) }
}

function closeServer(server: { close(callback: () => void): void }): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()))
}

/**
 * One request on `session`: its status, headers and body. `cancelAfter`: the client cancels the
 * stream (RST_STREAM CANCEL) once it has read that many SSE events, or, as a function, once it
 * resolves (then nothing is read).
 */
async function get(
  session: http2.ClientHttp2Session,
  path: string,
  customerId: string,
  cancelAfter?: number | (() => Promise<void>),
  method = 'GET',
) {
  const request = session.request({ ':method': method, ':path': path, 'x-customer-id': customerId })
  request.on('error', () => {})
  const cancel = () => request.close(http2.constants.NGHTTP2_CANCEL)
  if (typeof cancelAfter === 'function') {
    await cancelAfter()
    cancel()
    await once(request, 'close')
    return { status: undefined, headers: {}, body: '' }
  }
  const [headers] = (await once(request, 'response')) as [http2.IncomingHttpHeaders]
  let body = ''
  request.setEncoding('utf8')
  await new Promise<void>((resolve) => {
    request.on('data', (text: string) => {
      body += text
      if (cancelAfter !== undefined && body.split('\n\n').length - 1 >= cancelAfter) {
        cancel()
        resolve()
      }
    })
    request.on('close', resolve)
  })
  return { status: headers[':status'], headers, body }
}

/**
 * `settlesMidHandler`: the adapter settles a request whose client left while its handler runs
 * (Fastify, which watches the response from admission); Koa and Hono settle once the handler returned.
 */
function http2Suite<M extends MeterCore>(
  start: () => Promise<Harness<M, unknown>>,
  serveApp: Serve<M>,
  settlesMidHandler: boolean,
) {
  const harness = eachHarness(start)
  const opened: { session: http2.ClientHttp2Session; app: H2App }[] = []
  afterEach(async () => {
    for (const { session, app } of opened.splice(0)) {
      session.destroy()
      await app.close()
    }
  })

  async function open(onAbort?: AbortPolicy) {
    const app = await serveApp(harness().meter, onAbort)
    const session = http2.connect(app.url)
    session.on('error', () => {})
    opened.push({ session, app })
    return { app, session }
  }

  async function billed(customerId: string): Promise<number> {
    await harness().meter.flush()
    return harness().emu.recordedUsage({ customerId, meteringId: 'tokens' })
  }

  it('denies as over HTTP/1.1: 401 without a customer, 429 with its headers past the quota, nothing billed for them', async () => {
    harness().emu.createCustomer('h2-full', 'basic')
    const { app, session } = await open()
    const anonymous = await get(session, '/json', '')
    assert.equal(anonymous.status, 401)
    assert.equal(JSON.parse(anonymous.body).error.code, 'customer_unidentified')
    for (let i = 0; i < 33; i++) assert.equal((await get(session, '/json', 'h2-full')).status, 200) // 99 of 100
    const denied = await get(session, '/json', 'h2-full')
    assert.equal(denied.status, 429)
    assert.equal(JSON.parse(denied.body).error.code, 'quota_exceeded')
    assert.match(String(denied.headers['ratelimit']), /^"tokens";r=1\b/)
    await app.over()
    assert.equal(await billed('h2-full'), 99)
  })

  for (const onAbort of [undefined, 'release'] as const)
    it(`bills a complete response its cost, with its RateLimit headers (onAbort ${onAbort ?? 'default'})`, async () => {
      harness().emu.createCustomer('h2', 'basic')
      const { app, session } = await open(onAbort)
      const res = await get(session, '/json', 'h2')
      assert.equal(res.status, 200)
      assert.deepEqual(JSON.parse(res.body), { ok: true })
      assert.match(String(res.headers['ratelimit']), /^"tokens";r=97\b/)
      await app.over()
      assert.equal(await billed('h2'), 3)
    })

  it("bills under 'release' a response received in full whose client then cancels its still open request side", async () => {
    harness().emu.createCustomer('half-open', 'basic')
    const { app, session } = await open('release')
    // HEADERS without END_STREAM: the request side stays open, as an upload's would.
    const request = session.request({ ':path': '/big', 'x-customer-id': 'half-open' }, { endStream: false })
    request.on('error', () => {})
    let received = 0
    request.on('data', (chunk: Buffer) => (received += chunk.length))
    await once(request, 'end') // the server's END_STREAM: every byte of the response is here
    request.close(http2.constants.NGHTTP2_CANCEL)
    await app.over()
    assert.equal(received, BIG.length)
    assert.equal(await billed('half-open'), 3, 'delivered in full: not a client gone mid-response')
  })

  it('settles a stream its client cancels under the route rule, and the connection serves on', async () => {
    harness().emu.createCustomer('billed', 'basic')
    harness().emu.createCustomer('released', 'basic')
    for (const [customerId, onAbort] of [
      ['billed', undefined],
      ['released', 'release'],
    ] as const) {
      const { app, session } = await open(onAbort)
      const cancelled = await get(session, '/sse?chunks=1000&delayMs=5&tokens=1', customerId, 3)
      assert.equal(cancelled.status, 200)
      await app.over()
      // A cancelled stream is not a closed connection: the session is the client's still.
      assert.equal((await get(session, '/json', customerId)).status, 200)
      await app.over()
    }
    const streamed = (await billed('billed')) - 3
    assert.ok(streamed >= 3 && streamed < 100, `billed what was streamed: ${streamed}`)
    assert.equal(await billed('released'), 3, 'the JSON request only')
  })

  it('answers extend() false once its client has cancelled, and bills a request that wrote nothing no units', async () => {
    harness().emu.createCustomer('gone', 'basic')
    const { app, session } = await open()
    await get(session, '/wait', 'gone', () => eventually(() => app.waiting.count === 1, 'the handler waits'))
    await eventually(() => app.extended.length === 1, 'extend() was called')
    app.answer()
    await app.over()
    assert.deepEqual(app.extended, [false])
    assert.equal(await billed('gone'), 0)
  })

  it('releases a HEAD request whose client cancelled before it was answered', async () => {
    harness().emu.createCustomer('head', 'basic')
    const { app, session } = await open('release')
    const used = async () => {
      const lever = (await harness().meter.status('head')).levers['tokens']
      return lever?.kind === 'metered' ? lever.used : undefined
    }
    await get(session, '/wait', 'head', () => eventually(() => app.waiting.count === 1, 'the handler waits'), 'HEAD')
    await eventually(() => app.extended.length === 1, 'extend() was called')
    assert.deepEqual(app.extended, [false])
    // Node emits neither 'finish' nor 'close' for it until the handler answers: its stream is watched.
    if (settlesMidHandler) assert.equal(await used(), 0, 'released at once, the handler still running')
    app.answer()
    await eventually(async () => (await used()) === 0, 'the 5 units reserved came back')
    assert.equal(await billed('head'), 0)
  })
}

describe('HTTP/2: Fastify (http2: true)', () =>
  http2Suite(() => startFastifyHarness({ emulator: { fixture: tokensFixture } }), fastifyApp, true))

describe('HTTP/2: Koa on http2.createServer', () =>
  http2Suite(() => startHarness({ emulator: { fixture: tokensFixture } }), koaApp, false))

describe('HTTP/2: Hono on @hono/node-server (createServer: http2.createServer)', () =>
  http2Suite(() => startHonoHarness({ emulator: { fixture: tokensFixture } }), honoApp, false))

/**
 * A raw HTTP/2 server answering with `handle`, and a client whose `method` request is cancelled
 * once the handler ran: resolves with what `handle` pushed to `seen`, once it called `done()`.
 */
async function cancelledOnArrival(
  method: string,
  handle: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, seen: boolean[], done: () => void) => void,
): Promise<boolean[]> {
  const seen: boolean[] = []
  let [arrived, ended] = [() => {}, () => {}]
  const arrival = new Promise<void>((resolve) => (arrived = resolve))
  const done = new Promise<void>((resolve) => (ended = resolve))
  const server = http2.createServer((req, res) => {
    handle(req, res, seen, ended)
    arrived()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const session = http2.connect(urlOf(server))
  try {
    const request = session.request({ ':method': method, ':path': '/' })
    request.on('error', () => {})
    await arrival
    request.close(http2.constants.NGHTTP2_CANCEL)
    await done
    return seen
  } finally {
    session.destroy()
    await closeServer(server)
  }
}

const gone = (res: http2.Http2ServerResponse) => clientGone(res as unknown as ServerResponse)

describe('clientGone() on HTTP/2', () => {
  it('says a HEAD response cancelled before it ended is gone, after its end() too', async () => {
    const seen = await cancelledOnArrival('HEAD', (_req, res, seen, done) =>
      res.stream.once('close', () => {
        seen.push(gone(res))
        res.end() // a handler answering late: Node says writableEnded and writableFinished then
        seen.push(gone(res))
        done()
      }),
    )
    assert.deepEqual(seen, [true, true])
  })

  it("says a response its handler ended because its client left is gone (an SSE handler's req.on('close'))", async () => {
    const seen = await cancelledOnArrival('GET', (req, res, seen, done) => {
      res.write('data: 1\n\n')
      req.on('close', () => res.end())
      res.on('close', () => {
        seen.push(gone(res))
        done()
      })
    })
    assert.deepEqual(seen, [true])
  })
})
