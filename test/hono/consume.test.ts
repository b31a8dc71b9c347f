import assert from 'node:assert/strict'
import { getRequestListener } from '@hono/node-server'
import { type Context, Hono } from 'hono'
import { stream } from 'hono/streaming'
import request from 'supertest'
import { createMeter, type DecisionRecord, type PlanshipVariables } from '../../src/hono/index.js'
import { assertRendersUntouched, eachHarness } from '../helpers/harness.js'
import { jsonErrors, startHonoHarness } from '../helpers/hono.js'

type App = Hono<{ Variables: PlanshipVariables }>

/** The app on a real socket through @hono/node-server's listener: `c.env.outgoing` is the Node response. */
const overSocket = (app: App) => request(getRequestListener(app.fetch))

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('Hono: consume() and requireFeature()', () => {
  const harness = eachHarness((onEvent) => startHonoHarness({ meter: { onEvent } }))

  it('types and sets c.get("planship") / c.var.planship for the handler, with its decisions', async () => {
    const h = harness()
    const app: App = new Hono()
    app.post('/renders', h.meter.consume('render'), (c) => {
      const decisions: DecisionRecord[] = c.var.planship.decisions
      return c.json({ customer: c.get('planship').customerId, decisions })
    })
    const res = await overSocket(app).post('/renders').set('x-customer-id', 'pro-customer').expect(200)
    assert.equal(res.body.customer, 'pro-customer')
    assert.deepEqual(res.body.decisions, [{ kind: 'consume', subject: 'render', allowed: true, source: 'fresh' }])
  })

  it('answers 500 through app.onError when identify throws, before any reservation; others are unaffected', async () => {
    const h = harness()
    const meter = createMeter({
      ...h.options,
      identify: (c) => {
        if (c.req.header('x-customer-id') === 'explode') throw new Error('auth store down')
        return c.req.header('x-customer-id') || undefined
      },
    })
    const app: App = new Hono()
    const errors: unknown[] = []
    app.post('/', meter.consume('api-call'), (c) => c.text('ran'))
    app.onError((error, c) => {
      errors.push(error)
      return c.json({ error: error.message }, 500)
    })
    const failed = await overSocket(app).post('/').set('x-customer-id', 'explode').expect(500)
    assert.equal(failed.body.error, 'The identify option threw: auth store down')
    assert.equal((errors[0] as { code?: string }).code, 'IDENTIFY_FAILED')
    await overSocket(app).post('/').set('x-customer-id', 'pro-customer').expect(200, 'ran')
    await meter.close()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 1)
  })

  it('answers with the Response onDenied returns, which keeps the denial status and headers set on c', async () => {
    const h = harness()
    h.emu.createCustomer('denied-text', 'free')
    const seen: string[] = []
    const meter = createMeter({
      ...h.options,
      onDenied: (c, denial) => {
        seen.push(denial.code)
        return c.text(`no: ${denial.code}`)
      },
    })
    const app: App = new Hono()
    let handled = 0
    app.post('/renders', meter.consume('render'), (c) => {
      handled++
      return c.json({ ok: true })
    })
    for (let i = 0; i < 5; i++) await overSocket(app).post('/renders').set('x-customer-id', 'denied-text').expect(200)
    const denied = await overSocket(app).post('/renders').set('x-customer-id', 'denied-text').expect(429)
    assert.equal(denied.text, 'no: quota_exceeded')
    assert.equal(denied.headers['ratelimit'], '"renders-per-minute";r=0;t=60')
    assert.equal(denied.headers['retry-after'], '60')
    await overSocket(app).post('/renders').expect(401, 'no: customer_unidentified')
    assert.deepEqual(seen, ['quota_exceeded', 'customer_unidentified'])
    assert.equal(handled, 5)
    await meter.close()
  })

  it('answers the contract body when onDenied returns no Response (a JavaScript caller), so no request hangs', async () => {
    const h = harness()
    const meter = createMeter({ ...h.options, onDenied: (() => undefined) as unknown as () => Response })
    const app: App = new Hono()
    app.get('/export', meter.requireFeature('csv-export'), (c) => c.text('csv'))
    const denied = await overSocket(app).get('/export').set('x-customer-id', 'free-customer').expect(403)
    assert.equal(denied.body.error.code, 'feature_not_entitled')
    await meter.close()
  })

  it('keeps the RateLimit headers on a raw new Response, Response.json() and a response with headers of its own', async () => {
    const h = harness()
    const app: App = new Hono()
    app.post('/raw', h.meter.consume('render'), () => new Response('raw body'))
    app.post('/static', h.meter.consume('render'), () => Response.json({ ok: true }, { headers: { 'x-own': 'yes' } }))
    app.post('/c-json', h.meter.consume('render'), (c) => c.json({ ok: true }))
    const remaining = []
    for (const path of ['/raw', '/static', '/c-json']) {
      const res = await overSocket(app).post(path).set('x-customer-id', 'free-customer').expect(200)
      assert.equal(res.headers['ratelimit-policy'], '"renders-per-minute";q=5;w=60', path)
      remaining.push(res.headers['ratelimit'])
      if (path === '/static') assert.equal(res.headers['x-own'], 'yes')
    }
    assert.deepEqual(remaining, [
      '"renders-per-minute";r=4;t=60',
      '"renders-per-minute";r=3;t=60',
      '"renders-per-minute";r=2;t=60',
    ])
    assert.equal((await overSocket(app).post('/raw').set('x-customer-id', 'free-customer')).text, 'raw body')
  })

  it('does not report failed responses: a 500 and a thrown error release their reservation', async () => {
    const h = harness()
    h.emu.createCustomer('failing', 'free')
    const app: App = new Hono()
    app.post('/fail', h.meter.consume('render'), (c) => c.json({ error: 'boom' }, 500))
    app.post('/throw', h.meter.consume('render'), () => {
      throw new Error('handler crashed')
    })
    app.post('/reject', h.meter.consume('render'), async () => {
      await sleep(1)
      throw new Error('async handler crashed')
    })
    app.post('/renders', h.meter.consume('render'), (c) => c.json({ ok: true }))
    app.onError(jsonErrors)
    for (let i = 0; i < 5; i++) {
      for (const path of ['/fail', '/throw', '/reject'])
        await overSocket(app).post(path).set('x-customer-id', 'failing').expect(500)
    }
    await assertRendersUntouched(h, 'failing', () => overSocket(app).post('/renders').set('x-customer-id', 'failing'))
  })

  it('reads the usage of a c.body(ReadableStream) once the last byte is written, not when the handler returns', async () => {
    const h = harness()
    const app: App = new Hono()
    let rows = 0
    app.get('/rows', h.meter.consume('api-call', { cost: 10, usage: () => rows }), (c) => {
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          await sleep(5)
          rows++
          controller.enqueue(new TextEncoder().encode(`row ${rows}\n`))
          if (rows === 7) controller.close()
        },
      })
      return c.body(body, 200, { 'content-type': 'text/plain' })
    })
    const res = await overSocket(app).get('/rows').set('x-customer-id', 'pro-customer').expect(200)
    assert.equal(res.text.split('\n').length, 8)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 7)
  })

  it("mode: 'shadow' lets every request through, bills it, and says on the would-be 429 how things stand", async () => {
    const h = harness()
    h.emu.createCustomer('shadowed', 'free')
    const meter = createMeter({ ...h.options, mode: 'shadow' })
    const app: App = new Hono()
    app.post('/', meter.consume('render'), () => new Response('ok'))
    const responses = []
    for (let i = 0; i < 7; i++)
      responses.push(await overSocket(app).post('/').set('x-customer-id', 'shadowed').expect(200))
    assert.equal(responses[6]!.headers['ratelimit'], '"renders-per-minute";r=0;t=60')
    assert.equal(responses[6]!.headers['retry-after'], undefined)
    await meter.close()
    assert.equal(h.emu.recordedUsage({ customerId: 'shadowed', meteringId: 'render' }), 7)
  })

  it('throws a TypeError naming the option for invalid options, when the meter or route is defined', () => {
    const h = harness()
    assert.throws(() => createMeter({ ...h.options, onDenied: 'json' as unknown as () => Response }), {
      name: 'TypeError',
      message: /`onDenied`/,
    })
    assert.throws(() => h.meter.consume('api-call', { cost: -1 }), { name: 'TypeError', message: /`cost`/ })
    assert.throws(() => h.meter.requireFeature(''), { name: 'TypeError', message: /requireFeature\(lever\)/ })
    const { identify: _, ...withoutIdentify } = h.options
    const neutral = createMeter(withoutIdentify)
    assert.throws(() => neutral.middleware(), { name: 'TypeError', message: /`identify` option/ })
    return neutral.close()
  })
})

/**
 * Without @hono/node-server (`app.request()`, and the runtimes that serve `app.fetch` directly),
 * there is no Node response: the body stream is watched instead.
 */
describe('Hono: consume() off Node, through app.fetch', () => {
  const harness = eachHarness(() => startHonoHarness())
  const asCustomer = (customerId: string) => ({ headers: { 'x-customer-id': customerId } })

  it('bills a JSON answer its cost once its body was read, an empty one at once, and a thrown error nothing', async () => {
    const h = harness()
    const app: App = new Hono()
    app.get('/json', h.meter.consume('api-call', { cost: 3 }), (c) => c.json({ ok: true }))
    app.get('/throw', h.meter.consume('api-call', { cost: 5 }), () => {
      throw new Error('crashed')
    })
    app.get('/empty', h.meter.consume('api-call', { cost: 2 }), (c) => c.body(null, 204))
    app.onError(jsonErrors)
    const json = await app.request('/json', asCustomer('pro-customer'))
    assert.equal(json.status, 200)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 0, 'its body is unread')
    assert.deepEqual(await json.json(), { ok: true }) // what a runtime does with a response: read it
    assert.equal((await app.request('/throw', asCustomer('pro-customer'))).status, 500)
    assert.equal((await app.request('/empty', asCustomer('pro-customer'))).status, 204)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 5)
  })

  it('bills a stream once its body was read to the end, with the usage read then', async () => {
    const h = harness()
    const app: App = new Hono()
    let sent = 0
    app.get('/stream', h.meter.consume('api-call', { usage: () => sent }), (c) =>
      stream(c, async (out) => {
        for (let i = 0; i < 4; i++) {
          sent++
          await out.write(`chunk ${i}\n`)
        }
      }),
    )
    const res = await app.request('/stream', asCustomer('pro-customer'))
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 0, 'not read yet')
    assert.equal(res.headers.get('ratelimit-policy'), '"api-calls";q=10000')
    assert.equal((await res.text()).split('\n').length, 5)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 4)
  })

  it('treats a cancelled body as a client gone: billed what was sent by default, nothing under onAbort: release', async () => {
    const h = harness()
    h.emu.createCustomer('canceller', 'pro')
    const app: App = new Hono()
    let sent = 0
    const handler = (c: Context) =>
      c.body(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            sent++
            controller.enqueue(new TextEncoder().encode('x'))
          },
        }),
      )
    app.get('/bill', h.meter.consume('api-call', { cost: 50, usage: () => sent }), handler)
    app.get('/release', h.meter.consume('api-call', { cost: 50, usage: () => sent, onAbort: 'release' }), handler)
    for (const path of ['/bill', '/release']) {
      sent = 0
      const res = await app.request(path, asCustomer('canceller'))
      const reader = res.body!.getReader()
      for (let i = 0; i < 3; i++) await reader.read()
      await reader.cancel()
    }
    await h.meter.flush()
    const billed = h.emu.recordedUsage({ customerId: 'canceller', meteringId: 'api-call' })
    // The wrapper pulls ahead of the reader: what the source had produced when it was cancelled.
    assert.ok(billed >= 3 && billed <= 5, `billed ${billed}`)
    const whole = await h.meter.reserve('canceller', 'api-call', { cost: 10_000 - billed })
    assert.ok(whole.allowed, "the released stream's 50 units came back")
    await whole.release()
  })

  it('settles a HEAD request at once, as an empty answer: Hono drops the GET body it would answer with', async () => {
    const h = harness()
    const app: App = new Hono()
    app.get('/json', h.meter.consume('api-call', { cost: 10 }), (c) => c.json({ ok: true }))
    // The free plan's 100 api calls: ten HEADs of cost 10 use them up only if every one is billed
    // and none is still held (a hold Hono's dropped body never settles would keep them for good).
    for (let i = 0; i < 10; i++) {
      const res = await app.request('/json', { method: 'HEAD', ...asCustomer('free-customer') })
      assert.equal(res.status, 200)
      assert.equal(res.body, null)
    }
    const lever = (await h.meter.status('free-customer')).levers['api-calls']
    assert.ok(lever?.kind === 'metered')
    assert.deepEqual({ used: lever.used, remaining: lever.remaining }, { used: 100, remaining: 0 })
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'free-customer', meteringId: 'api-call' }), 100)
  })
})
