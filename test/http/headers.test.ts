import assert from 'node:assert/strict'
import { Planship } from '@planship/fetch'
import express from 'express'
import Koa from 'koa'
import request from 'supertest'
import { createMeter as createExpressMeter } from '../../src/express/index.js'
import { createMeter, type HeaderStyle, type PlanshipState } from '../../src/index.js'
import { type Harness, startHarness, until } from '../helpers/harness.js'

describe('rate-limit headers on every metered response', () => {
  let h: Harness

  beforeEach(async () => {
    h = await startHarness()
  })
  afterEach(() => h.close())

  const koaApp = (headers: HeaderStyle | undefined, meteringId = 'render', cost = 1) => {
    const meter = createMeter({ ...h.options, ...(headers === undefined ? {} : { headers }) })
    const app = new Koa<PlanshipState>()
    app.use(meter.consume(meteringId, { cost }))
    app.use((ctx) => {
      ctx.body = 'ok'
    })
    const call = (customer: string) => request(app.callback()).post('/').set('x-customer-id', customer)
    return { meter, call }
  }

  it("'draft' (the default): RateLimit and RateLimit-Policy on a 200 for the lever with the least room", async () => {
    h.emu.createCustomer('draft-customer', 'free')
    const { meter, call } = koaApp(undefined)
    const first = await call('draft-customer').expect(200)
    assert.equal(first.headers['ratelimit'], '"renders-per-minute";r=4;t=60')
    assert.equal(first.headers['ratelimit-policy'], '"renders-per-minute";q=5;w=60')
    assert.equal(first.headers['retry-after'], undefined)
    const second = await call('draft-customer').expect(200)
    assert.equal(second.headers['ratelimit'], '"renders-per-minute";r=3;t=60', 'the remaining after this admission')
    await meter.close()
  })

  it("'legacy': X-RateLimit-Limit, -Remaining and -Reset (epoch seconds) on 200 and 429", async () => {
    h.emu.createCustomer('legacy-customer', 'free')
    const { meter, call } = koaApp('legacy')
    const ok = await call('legacy-customer').expect(200)
    assert.equal(ok.headers['x-ratelimit-limit'], '5')
    assert.equal(ok.headers['x-ratelimit-remaining'], '4')
    const reset = Number(ok.headers['x-ratelimit-reset'])
    assert.ok(Math.abs(reset - (Date.now() / 1000 + 60)) < 30, `reset ${reset} is about a minute away`)
    assert.equal(ok.headers['ratelimit'], undefined)
    for (let i = 0; i < 4; i++) await call('legacy-customer').expect(200)
    const denied = await call('legacy-customer').expect(429)
    assert.equal(denied.headers['x-ratelimit-remaining'], '0')
    assert.equal(denied.headers['retry-after'], '60')
    assert.equal(denied.headers['ratelimit'], undefined)
    await meter.close()
  })

  it('false: no rate-limit headers, and a 429 still says Retry-After', async () => {
    h.emu.createCustomer('quiet-customer', 'free')
    const { meter, call } = koaApp(false)
    const ok = await call('quiet-customer').expect(200)
    assert.deepEqual(
      Object.keys(ok.headers).filter((name) => name.includes('ratelimit')),
      [],
    )
    for (let i = 0; i < 4; i++) await call('quiet-customer').expect(200)
    const denied = await call('quiet-customer').expect(429)
    assert.deepEqual(
      Object.keys(denied.headers).filter((name) => name.includes('ratelimit')),
      [],
    )
    assert.equal(denied.headers['retry-after'], '60')
    await meter.close()
  })

  it('a quota that resets with the subscription: Retry-After is the time to the renewal, once it is known', async () => {
    h.emu.createCustomer('monthly-customer', 'free')
    const { meter, call } = koaApp('draft', 'api-call', 50)
    await call('monthly-customer').expect(200)
    await call('monthly-customer').expect(200)
    const first = await call('monthly-customer').expect(429)
    assert.equal(first.headers['ratelimit-policy'], '"api-calls";q=100')
    // The renewal is read in the background after the first denial, never on the request path:
    // denied again until a denial says when the quota comes back.
    let denied = first
    await until(async () => (denied = await call('monthly-customer').expect(429)).headers['retry-after'] !== undefined)
    const planship = new Planship(
      h.emu.productSlug,
      { clientId: h.emu.clientId, clientSecret: h.emu.clientSecret },
      { baseUrl: h.emu.url },
    )
    const [subscription] = await planship.listSubscriptions('monthly-customer')
    const expected = (subscription!.renewAt.getTime() - Date.now()) / 1000
    const retryAfter = Number(denied.headers['retry-after'])
    assert.ok(Math.abs(retryAfter - expected) < 30, `Retry-After ${retryAfter} s, renewal in ${expected} s`)
    assert.equal(denied.headers['ratelimit'], `"api-calls";r=0;t=${retryAfter}`)
    await meter.close()
  })

  it("describes the customer's own plan: 10 000 api calls on pro", async () => {
    const { meter, call } = koaApp('draft', 'api-call')
    h.emu.createCustomer('unlimited-customer', 'pro')
    const ok = await call('unlimited-customer').expect(200)
    assert.match(String(ok.headers['ratelimit']), /^"api-calls";r=9999/)
    await meter.close()
  })

  it('the same headers on Express, on 200 and 429', async () => {
    h.emu.createCustomer('express-headers', 'free')
    const { onDenied: _koaOnly, ...shared } = h.options
    const meter = createExpressMeter({ ...shared, identify: (req) => req.get('x-customer-id') })
    const app = express()
    app.post('/', meter.consume('render'), (_req, res) => {
      res.send('ok')
    })
    const call = () => request(app).post('/').set('x-customer-id', 'express-headers')
    const ok = await call().expect(200)
    assert.equal(ok.headers['ratelimit'], '"renders-per-minute";r=4;t=60')
    assert.equal(ok.headers['ratelimit-policy'], '"renders-per-minute";q=5;w=60')
    for (let i = 0; i < 4; i++) await call().expect(200)
    const denied = await call().expect(429)
    assert.equal(denied.headers['ratelimit'], '"renders-per-minute";r=0;t=60')
    assert.equal(denied.headers['retry-after'], '60')
    await meter.close()
  })

  it('rejects an unknown headers option with a TypeError naming it', () => {
    assert.throws(() => createMeter({ ...h.options, headers: 'draft-7' as HeaderStyle }), /option `headers`/)
  })
})
