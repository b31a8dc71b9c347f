import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import request from 'supertest'
import { createMeter, type FastifyMeter } from '../../src/fastify/index.js'
import { errorsLogger, fastifyDemoApp, startFastifyHarness } from '../helpers/fastify.js'
import { assertRendersUntouched, eachHarness, eachServedDemo } from '../helpers/harness.js'
import { tokensFixture } from '../helpers/streams.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const customer = (id: string) => ({ 'x-customer-id': id })

/** A Fastify app on 127.0.0.1, closed after the test by `apps`. */
async function serve(app: FastifyInstance, apps: FastifyInstance[]): Promise<http.Server> {
  apps.push(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return app.server
}

describe('Fastify: the plugin', () => {
  const harness = eachHarness(() => startFastifyHarness())
  const apps: FastifyInstance[] = []
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close()
  })

  it('declares request.planship and identifies every request in its context and the ones below, metered or not', async () => {
    const { meter } = harness()
    const app = Fastify()
    await app.register(meter.plugin)
    const seen = (request: FastifyRequest) => ({ customer: request.planship?.customerId ?? null })
    app.get('/free', async (request) => seen(request))
    await app.register(async (child) => {
      child.get('/child', async (request) => seen(request))
    })
    await app.ready()
    for (const url of ['/free', '/child']) {
      const res = await app.inject({ url, headers: customer('pro-customer') })
      assert.deepEqual(res.json(), { customer: 'pro-customer' }, url)
    }
    assert.deepEqual((await app.inject({ url: '/free' })).json(), { customer: null }, 'nobody: identified, no customer')
    assert.ok(app.hasRequestDecorator('planship'))
    assert.ok(app.hasPlugin('planship-meter'), 'its plugin-meta name, for dependencies of other plugins')
  })

  it('stays in the context it is registered in: a sibling context neither declares nor identifies', async () => {
    const { meter } = harness()
    const app = Fastify()
    await app.register(async (metered) => {
      await metered.register(meter.plugin)
      metered.get('/metered', async (request) => ({ customer: request.planship?.customerId ?? null }))
    })
    await app.register(async (other) => {
      other.get('/other', async (request) => ({ declared: 'planship' in request }))
    })
    await app.ready()
    assert.deepEqual((await app.inject({ url: '/metered', headers: customer('pro-customer') })).json(), {
      customer: 'pro-customer',
    })
    assert.deepEqual((await app.inject({ url: '/other', headers: customer('pro-customer') })).json(), {
      declared: false,
    })
    assert.equal(app.hasRequestDecorator('planship'), false)
  })

  it('can be registered twice, and lets a plugin depending on planship-meter register after it', async () => {
    const { meter } = harness()
    const app = Fastify()
    await app.register(meter.plugin)
    await app.register(meter.plugin)
    const dependent = Object.assign(async () => {}, {
      [Symbol.for('skip-override')]: true,
      [Symbol.for('plugin-meta')]: { name: 'needs-planship', dependencies: ['planship-meter'] },
    })
    await app.register(dependent)
    app.get('/', async (request) => ({ decisions: request.planship?.decisions.length }))
    assert.deepEqual((await app.inject({ url: '/', headers: customer('pro-customer') })).json(), { decisions: 0 })
  })

  it('refuses to register for a meter without identify, saying so', async () => {
    const { options } = harness()
    const meter = createMeter({ ...options, identify: undefined })
    const app = Fastify()
    await assert.rejects(
      async () => app.register(meter.plugin),
      (error: unknown) => error instanceof TypeError && /needs the `identify` option/.test(error.message),
    )
    assert.throws(() => meter.consume('api-call'), TypeError)
    await meter.close()
  })

  it('does not close the meter when the app closes: the app calls close(), as on Koa and Express', async () => {
    const { meter, emu } = harness()
    const app = Fastify()
    await app.register(meter.plugin)
    app.post('/calls', { preHandler: meter.consume('api-call') }, async () => ({ ok: true }))
    assert.equal(
      (await app.inject({ method: 'POST', url: '/calls', headers: customer('pro-customer') })).statusCode,
      200,
    )
    await app.close()
    await meter.flush() // still open: flush() after close() would reject with METER_CLOSED
    assert.equal(emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 1)
  })

  it('meters a route without the plugin: consume() identifies the request itself', async () => {
    const { meter } = harness()
    const app = Fastify()
    app.post('/calls', { preHandler: meter.consume('api-call') }, async (request) => ({
      customer: request.planship?.customerId,
    }))
    const res = await app.inject({ method: 'POST', url: '/calls', headers: customer('pro-customer') })
    assert.deepEqual(res.json(), { customer: 'pro-customer' })
    assert.equal((await app.inject({ method: 'POST', url: '/calls' })).statusCode, 401)
  })

  it('decides synchronously on a warm cache: the hook calls done() before it returns', async () => {
    const { meter } = harness()
    const consume = meter.consume('api-call')
    const feature = meter.requireFeature('csv-export')
    const synchronous: boolean[] = []
    /** The meter's hook, noting whether it called `done` before returning. */
    const observed =
      (hook: typeof consume) => (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => {
        let returned = false
        hook(request, reply, (error?: Error) => {
          synchronous.push(!returned)
          done(error)
        })
        returned = true
      }
    const app = Fastify()
    await app.register(meter.plugin)
    app.post('/calls', { preHandler: [observed(feature), observed(consume)] }, async () => ({ ok: true }))
    for (let i = 0; i < 3; i++) {
      const res = await app.inject({ method: 'POST', url: '/calls', headers: customer('pro-customer') })
      assert.equal(res.statusCode, 200)
    }
    // The first request read Planship (asynchronously); the next two were decided from cache.
    assert.deepEqual(synchronous, [false, false, true, true, true, true])
  })
})

describe('Fastify: consume() and requireFeature()', () => {
  const { harness, call } = eachServedDemo(() => startFastifyHarness(), fastifyDemoApp)
  const apps: FastifyInstance[] = []
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close()
  })

  /** A Fastify app with `meter`'s plugin, and a customer of its own on the free plan. */
  async function appFor(meter: FastifyMeter, customerId: string): Promise<FastifyInstance> {
    harness().emu.createCustomer(customerId, 'free')
    const app = Fastify()
    await app.register(meter.plugin)
    return app
  }

  it('puts the identified customer on request.planship for the handler, with its decisions', async () => {
    harness()
    const res = await call('/renders', 'pro-customer').expect(200)
    assert.equal(res.body.customer, 'pro-customer')
    assert.equal(res.headers['ratelimit-policy'], '"renders-per-minute";q=100;w=60')
  })

  it('answers an identify that throws (or rejects) with a 500 and leaves the counters untouched', async () => {
    const h = harness()
    h.emu.createCustomer('victim', 'free')
    const app = Fastify()
    const meter = createMeter({
      ...h.options,
      identify: (request) => {
        if (request.headers['x-fail'] === 'throw') throw new Error('auth backend down')
        if (request.headers['x-fail'] === 'reject') return Promise.reject(new Error('auth backend timed out'))
        return request.headers['x-customer-id'] as string | undefined
      },
    })
    await app.register(meter.plugin)
    app.post('/renders', { preHandler: meter.consume('render') }, async () => ({ ok: true }))
    const server = await serve(app, apps)
    try {
      for (const fail of ['throw', 'reject']) {
        for (let i = 0; i < 3; i++) {
          const res = await request(server).post('/renders').set('x-customer-id', 'victim').set('x-fail', fail)
          assert.equal(res.status, 500)
          assert.match(res.body.message, /The identify option threw: auth backend/)
        }
      }
      const render = () => request(server).post('/renders').set('x-customer-id', 'victim')
      await assertRendersUntouched({ ...h, meter }, 'victim', render)
    } finally {
      await meter.close()
    }
  })

  it('answers a cost function that throws with a 500, reserving nothing', async () => {
    const h = harness()
    const app = await appFor(h.meter, 'costly')
    const cost = (request: FastifyRequest) => {
      if (request.headers['x-bad'] !== undefined) throw new Error('bad cost')
      return 1
    }
    app.post('/renders', { preHandler: h.meter.consume('render', { cost }) }, async () => ({ ok: true }))
    const server = await serve(app, apps)
    for (let i = 0; i < 3; i++) {
      await request(server).post('/renders').set('x-customer-id', 'costly').set('x-bad', '1').expect(500)
    }
    await assertRendersUntouched(h, 'costly', () => request(server).post('/renders').set('x-customer-id', 'costly'))
  })

  it('releases the reservation of a handler that fails (a 500, a throw, a rejection)', async () => {
    const h = harness()
    const app = await appFor(h.meter, 'failing')
    const preHandler = h.meter.consume('render')
    app.post('/fail', { preHandler }, async (_request, reply) => reply.code(500).send({ error: 'boom' }))
    app.post('/throw', { preHandler }, () => {
      throw new Error('handler crashed')
    })
    app.post('/reject', { preHandler }, async () => Promise.reject(new Error('async handler crashed')))
    app.post('/renders', { preHandler }, async () => ({ ok: true }))
    const server = await serve(app, apps)
    for (let i = 0; i < 5; i++) {
      for (const path of ['/fail', '/throw', '/reject'])
        await request(server).post(path).set('x-customer-id', 'failing').expect(500)
    }
    await assertRendersUntouched(h, 'failing', () => request(server).post('/renders').set('x-customer-id', 'failing'))
  })

  it('writes denials itself, so an error handler of the app cannot rewrite them', async () => {
    const h = harness()
    const app = await appFor(h.meter, 'handled')
    app.setErrorHandler(async (_error, _request, reply) => reply.code(418).send({ rewritten: true }))
    app.post('/renders', { preHandler: h.meter.consume('render') }, async () => ({ ok: true }))
    app.get('/export', { preHandler: h.meter.requireFeature('csv-export') }, async () => 'csv')
    const server = await serve(app, apps)
    for (let i = 0; i < 5; i++) await request(server).post('/renders').set('x-customer-id', 'handled').expect(200)
    const quota = await request(server).post('/renders').set('x-customer-id', 'handled').expect(429)
    assert.equal(quota.body.error.code, 'quota_exceeded')
    assert.equal(quota.headers['retry-after'], '60')
    const feature = await request(server).get('/export').set('x-customer-id', 'handled').expect(403)
    assert.equal(feature.body.error.code, 'feature_not_entitled')
    await request(server).post('/renders').expect(401)
  })

  it('hands onDenied (request, reply, denial), with the status and headers set; one that sends nothing gets the default body', async () => {
    const h = harness()
    h.emu.createCustomer('denied', 'free')
    const seen: string[] = []
    const meter = createMeter({
      ...h.options,
      onDenied: async (request, reply, denial) => {
        seen.push(`${request.url} ${reply.statusCode} ${denial.code}`)
        if (request.url === '/quiet') return // answers nothing: the default body follows
        await reply.header('content-type', 'text/plain').send(`denied: ${denial.message}`)
      },
    })
    try {
      const app = Fastify()
      await app.register(meter.plugin)
      app.get('/export', { preHandler: meter.requireFeature('csv-export') }, async () => 'csv')
      app.get('/quiet', { preHandler: meter.requireFeature('csv-export') }, async () => 'csv')
      const server = await serve(app, apps)
      const custom = await request(server).get('/export').set('x-customer-id', 'denied').expect(403)
      assert.equal(custom.text, "denied: The customer's plan does not include csv-export")
      const quiet = await request(server).get('/quiet').set('x-customer-id', 'denied').expect(403)
      assert.equal(quiet.body.error.code, 'feature_not_entitled')
      assert.deepEqual(seen, ['/export 403 feature_not_entitled', '/quiet 403 feature_not_entitled'])
    } finally {
      await meter.close()
    }
  })

  it('lets everything through in shadow mode, with the headers, recording what it would have denied', async () => {
    const h = harness()
    const app = await appFor(h.meter, 'shadowed')
    const shadow = h.meter.consume('render', { mode: 'shadow' })
    app.post('/renders', { preHandler: shadow }, async (request) => ({
      allowed: request.planship?.decisions.map((decision) => decision.allowed),
    }))
    const server = await serve(app, apps)
    for (let i = 0; i < 5; i++) await request(server).post('/renders').set('x-customer-id', 'shadowed').expect(200)
    const over = await request(server).post('/renders').set('x-customer-id', 'shadowed').expect(200)
    assert.deepEqual(over.body, { allowed: [false] })
    assert.equal(over.headers['ratelimit'], '"renders-per-minute";r=0;t=60')
    assert.equal(over.headers['retry-after'], undefined)
  })
})

describe('Fastify: POST bodies and clients that leave', () => {
  const apps: FastifyInstance[] = []
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close()
  })

  /** POSTs `body` (JSON) and goes away once `leave` resolves, or reads the whole answer. */
  async function post(server: http.Server, path: string, body: string, customerId: string, leave?: Promise<unknown>) {
    const { port } = server.address() as AddressInfo
    const req = http.request({
      host: '127.0.0.1',
      port,
      path,
      method: 'POST',
      headers: {
        'x-customer-id': customerId,
        'content-type': 'application/json',
        ...(leave !== undefined && { 'x-leaving': '1' }),
      },
    })
    req.on('error', () => {})
    req.end(body)
    if (leave !== undefined) {
      await leave
      req.destroy()
      return undefined
    }
    const [res] = (await once(req, 'response')) as [http.IncomingMessage]
    let text = ''
    for await (const chunk of res) text += String(chunk)
    return { status: res.statusCode, text }
  }

  /**
   * `/render` reserves the frames of its JSON body, takes 150 ms, then bills them. Node ends the
   * request's stream once the body is read, long before the response: that must not look like
   * a client gone.
   */
  async function renderApp(meter: FastifyMeter, options: { onAbort?: 'bill' | 'release' } = {}) {
    const app = Fastify({ loggerInstance: errorsLogger([]) })
    await app.register(meter.plugin)
    const frames = (request: FastifyRequest) => (request.body as { frames: number }).frames
    const ends: Promise<unknown>[] = []
    app.addHook('onRequest', (_request, reply, done) => {
      ends.push(once(reply.raw, 'close'))
      done()
    })
    let started: () => void = () => {}
    const handling = new Promise<void>((resolve) => (started = resolve))
    app.post(
      '/render',
      { preHandler: meter.consume('tokens', { cost: frames, ...options }) },
      async (request, reply) => {
        started()
        // A leaving client is gone before the work ends, however late a loaded machine runs a timer.
        await (request.headers['x-leaving'] === undefined ? sleep(150) : once(reply.raw, 'close'))
        return { frames: frames(request) }
      },
    )
    return { server: await serve(app, apps), handling, over: () => Promise.all(ends) }
  }

  const tokens = eachHarness(() => startFastifyHarness({ emulator: { fixture: tokensFixture } }))

  it('reserves a cost read from the parsed body, and bills a client that waited for the answer', async () => {
    const h = tokens()
    h.emu.createCustomer('patient', 'basic')
    const { server, over } = await renderApp(h.meter)
    const answer = await post(server, '/render', JSON.stringify({ frames: 7 }), 'patient')
    assert.deepEqual(answer, { status: 200, text: '{"frames":7}' })
    await over()
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'patient', meteringId: 'tokens' }), 7)
  })

  it('releases a client gone while the handler works (the default), and bills it under onAbort: bill', async () => {
    const h = tokens()
    h.emu.createCustomer('leaver', 'basic')
    const warm = await h.meter.reserve('leaver', 'tokens', { cost: 1 }) // decided from cache, before the client leaves
    assert.ok(warm.allowed)
    await warm.release()
    const released = await renderApp(h.meter)
    await post(released.server, '/render', JSON.stringify({ frames: 9 }), 'leaver', released.handling)
    await released.over()
    await sleep(200) // the handler finishes meanwhile: still not billed
    const billing = await renderApp(h.meter, { onAbort: 'bill' })
    await post(billing.server, '/render', JSON.stringify({ frames: 4 }), 'leaver', billing.handling)
    await billing.over()
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'leaver', meteringId: 'tokens' }), 4)
  })

  it('reserves nothing for a client gone while its body was still coming', async () => {
    const h = tokens()
    h.emu.createCustomer('halfway', 'basic')
    const { server } = await renderApp(h.meter)
    const { port } = server.address() as AddressInfo
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: '/render',
      method: 'POST',
      headers: { 'x-customer-id': 'halfway', 'content-type': 'application/json', 'content-length': '100' },
    })
    req.on('error', () => {})
    req.write('{"frames": 50')
    await sleep(50)
    req.destroy()
    await sleep(50)
    const whole = await h.meter.reserve('halfway', 'tokens', { cost: 100 })
    assert.ok(whole.allowed, 'all 100 units are still there')
    await whole.release()
  })
})
