import assert from 'node:assert/strict'
import express4 from 'express4'
import request from 'supertest'
import { expressDemoApp, startExpressHarness } from '../helpers/express.js'
import { fastifyDemoApp, startFastifyHarness } from '../helpers/fastify.js'
import { demoApp, eachServedDemo, startHarness } from '../helpers/harness.js'
import { honoDemoApp, startHonoHarness } from '../helpers/hono.js'

/** The contract every adapter keeps, run on each: same statuses, bodies, headers and strictness. */
function contract(served: ReturnType<typeof eachServedDemo>) {
  const { harness, call } = served
  const handled = () => served.served.handled.count
  const get = (path: string, customer: string) => request(served.served.server).get(path).set('x-customer-id', customer)

  it('answers 429 with the contract body and RateLimit headers once the quota is used, without running the handler', async () => {
    const h = harness()
    h.emu.createCustomer('quota@example.com', 'free')
    for (let i = 0; i < 5; i++) await call('/renders', 'quota@example.com').expect(200)
    const before = handled()

    const denied = await call('/renders', 'quota@example.com').expect(429)

    assert.equal(handled(), before, 'the handler must not run for a denied request')
    assert.deepEqual(denied.body, {
      error: {
        code: 'quota_exceeded',
        message: "The customer's renders-per-minute allowance is used up",
        lever: 'renders-per-minute',
      },
    })
    // A rolling 60 s window: the allowance is back within 60 s at the latest.
    assert.equal(denied.headers['ratelimit'], '"renders-per-minute";r=0;t=60')
    assert.equal(denied.headers['ratelimit-policy'], '"renders-per-minute";q=5;w=60')
    assert.equal(denied.headers['retry-after'], '60')
    assert.equal(h.meter.planshipCalls().reportUsage, 0, 'usage is reported after responses, on flush only')
  })

  it('admits exactly 5 of 50 concurrent requests of a customer with 5 units left', async () => {
    const h = harness()
    h.emu.createCustomer('burst-customer', 'free')
    const responses = await Promise.all(Array.from({ length: 50 }, () => call('/renders', 'burst-customer')))

    const counts = responses.reduce<Record<number, number>>(
      (acc, res) => ({ ...acc, [res.status]: (acc[res.status] ?? 0) + 1 }),
      {},
    )
    assert.deepEqual(counts, { 200: 5, 429: 45 })
    assert.equal(handled(), 5)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'burst-customer', meteringId: 'render' }), 5)
  })

  it('serves a warm request with no upstream call', async () => {
    const h = harness()
    await call('/calls', 'pro-customer').expect(200)
    h.emu.resetRequestCounts()

    for (let i = 0; i < 25; i++) await call('/calls', 'pro-customer').expect(200)

    assert.deepEqual(h.emu.requestCounts(), {})
  })

  it('identifies nobody without the header: 401 customer_unidentified', async () => {
    const res = await call('/calls').expect(401)
    assert.equal(res.body.error.code, 'customer_unidentified')
    assert.equal(handled(), 0)
  })

  it('lets pro customers export CSV and answers 403 feature_not_entitled to free ones', async () => {
    await get('/export', 'pro-customer').expect(200)
    const denied = await get('/export', 'free-customer').expect(403)
    assert.deepEqual(denied.body, {
      error: {
        code: 'feature_not_entitled',
        message: "The customer's plan does not include csv-export",
        lever: 'csv-export',
      },
    })
    assert.equal(handled(), 1)
  })
}

describe('Koa: the request contract', () => contract(eachServedDemo(startHarness, demoApp)))
describe('Express: the request contract', () => contract(eachServedDemo(() => startExpressHarness(), expressDemoApp)))
describe('Express 4: the request contract', () =>
  contract(
    eachServedDemo(
      () => startExpressHarness(),
      (meter) => expressDemoApp(meter, express4),
    ),
  ))
describe('Fastify: the request contract', () => contract(eachServedDemo(() => startFastifyHarness(), fastifyDemoApp)))
describe('Hono: the request contract', () => contract(eachServedDemo(() => startHonoHarness(), honoDemoApp)))
