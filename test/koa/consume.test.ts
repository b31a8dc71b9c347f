import assert from 'node:assert/strict'
import type { Server } from 'node:http'
import Router from '@koa/router'
import Koa from 'koa'
import request from 'supertest'
import { Planship } from '@planship/fetch'
import { createMeter, type PlanshipState } from '../../src/index.js'
import { demoApp, type Harness, startHarness } from '../helpers/harness.js'

describe('consume()', () => {
  let h: Harness
  let server: Server
  let handled: { count: number }

  beforeEach(async () => {
    h = await startHarness()
    const demo = demoApp(h.meter)
    handled = demo.handled
    server = demo.app.listen(0, '127.0.0.1')
  })

  afterEach(async () => {
    server.closeAllConnections()
    server.close()
    await h.close()
  })

  const call = (path: string, customer?: string) => {
    const req = request(server).post(path)
    return customer === undefined ? req : req.set('x-customer-id', customer)
  }

  it('answers 429 with the contract body and RateLimit headers once the quota is used, without running the handler', async () => {
    h.emu.createCustomer('quota@example.com', 'free')
    for (let i = 0; i < 5; i++) await call('/renders', 'quota@example.com').expect(200)
    const before = handled.count

    const denied = await call('/renders', 'quota@example.com').expect(429)

    assert.equal(handled.count, before, 'the handler must not run for a denied request')
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
    h.emu.createCustomer('burst-customer', 'free')
    const statuses = await Promise.all(Array.from({ length: 50 }, () => call('/renders', 'burst-customer')))

    const counts = statuses.reduce<Record<number, number>>(
      (acc, res) => ({ ...acc, [res.status]: (acc[res.status] ?? 0) + 1 }),
      {},
    )
    assert.deepEqual(counts, { 200: 5, 429: 45 })
    assert.equal(handled.count, 5)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'burst-customer', meteringId: 'render' }), 5)
  })

  it('holds the line on a quota that was mostly used elsewhere (95 of 100 api calls)', async () => {
    h.emu.createCustomer('almost-out', 'free')
    // Another process reported 95 units before this one started.
    const other = createMeter({ ...h.options, identify: () => 'almost-out' })
    const app = new Koa<PlanshipState>()
    const router = new Router<PlanshipState>()
    router.post('/bulk', other.consume('api-call', { cost: 95 }), (ctx) => {
      ctx.body = {}
    })
    app.use(router.routes())
    await request(app.callback()).post('/bulk').expect(200)
    await other.close()

    const statuses = await Promise.all(Array.from({ length: 20 }, () => call('/calls', 'almost-out')))
    assert.equal(statuses.filter((res) => res.status === 200).length, 5)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'almost-out', meteringId: 'api-call' }), 100)
  })

  it('reports exactly the admitted usage after flush(), in one POST per customer and metering id', async () => {
    const customers = ['pro-customer', 'free-customer']
    for (const customer of customers) for (let i = 0; i < 30; i++) await call('/calls', customer).expect(200)
    h.emu.resetRequestCounts()

    const result = await h.meter.flush()

    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 30)
    assert.equal(h.emu.recordedUsage({ customerId: 'free-customer', meteringId: 'api-call' }), 30)
    assert.equal(h.emu.requestCounts()['reportUsage'], 2, '60 requests, 2 report calls')
    assert.deepEqual({ reports: result.reports, units: result.units }, { reports: 2, units: 60 })
  })

  it('serves a warm request with no upstream call', async () => {
    await call('/calls', 'pro-customer').expect(200)
    h.emu.resetRequestCounts()

    for (let i = 0; i < 25; i++) await call('/calls', 'pro-customer').expect(200)

    assert.deepEqual(h.emu.requestCounts(), {})
  })

  it('keeps denying from cache: a repeated 429 makes no upstream call', async () => {
    h.emu.createCustomer('denied-warm', 'free')
    for (let i = 0; i < 5; i++) await call('/renders', 'denied-warm').expect(200)
    await call('/renders', 'denied-warm').expect(429)
    await new Promise((resolve) => setTimeout(resolve, 50)) // the header's background read, if any
    h.emu.resetRequestCounts()
    for (let i = 0; i < 10; i++) await call('/renders', 'denied-warm').expect(429)
    assert.deepEqual(h.emu.requestCounts(), {})
  })

  it('identifies nobody without the header: 401 customer_unidentified', async () => {
    const res = await call('/calls').expect(401)
    assert.equal(res.body.error.code, 'customer_unidentified')
    assert.equal(handled.count, 0)
  })

  it('releases the reservation of a request that fails (status >= 400) and reports nothing for it', async () => {
    h.emu.createCustomer('failing', 'free')
    const app = new Koa<PlanshipState>()
    const router = new Router<PlanshipState>()
    router.post('/fail', h.meter.consume('render'), (ctx) => {
      ctx.status = 500
      ctx.body = { error: 'boom' }
    })
    router.post('/throw', h.meter.consume('render'), () => {
      throw new Error('handler crashed')
    })
    app.silent = true
    app.use(h.meter.middleware())
    app.use(router.routes())
    for (let i = 0; i < 10; i++) {
      await request(app.callback()).post('/fail').set('x-customer-id', 'failing').expect(500)
      await request(app.callback()).post('/throw').set('x-customer-id', 'failing').expect(500)
    }
    // Twenty failures consumed nothing: all 5 renders of the minute are still there.
    for (let i = 0; i < 5; i++) await call('/renders', 'failing').expect(200)
    await call('/renders', 'failing').expect(429)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'failing', meteringId: 'render' }), 5)
  })

  it('reserves a dynamic cost, reports a usage read after the handler, under a bucket', async () => {
    const app = new Koa<PlanshipState>()
    const router = new Router<PlanshipState>()
    router.get(
      '/rows',
      h.meter.consume('api-call', {
        cost: (ctx) => Number(ctx.query['limit']),
        usage: (ctx) => (ctx.body as unknown[]).length,
        bucket: (ctx) => ctx.get('x-project'),
      }),
      (ctx) => {
        ctx.body = Array.from({ length: 3 }, (_, i) => i)
      },
    )
    app.use(h.meter.middleware())
    app.use(router.routes())
    await request(app.callback())
      .get('/rows?limit=10')
      .set('x-customer-id', 'pro-customer')
      .set('x-project', 'proj A')
      .expect(200)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call', bucket: 'proj A' }), 3)
  })

  it('keeps counting reported usage that Planship has not aggregated yet', async () => {
    h.emu.createCustomer('laggy', 'free')
    h.emu.setAggregationLag(60_000)
    const lagging = createMeter({
      ...h.options,
      cache: { ttlMs: 1, aggregationLagMs: 60_000 },
    })
    const app = demoApp(lagging).app
    for (let i = 0; i < 5; i++) await request(app.callback()).post('/renders').set('x-customer-id', 'laggy').expect(200)
    await lagging.flush()
    await new Promise((resolve) => setTimeout(resolve, 5))
    // The cache is expired and Planship still says 5 left; the 5 reported units must still count.
    const entitlements = await fetchEntitlements(h, 'laggy')
    assert.equal(entitlements['renders-per-minute'], 5)
    const fetchesBefore = lagging.planshipCalls().entitlements
    await request(app.callback()).post('/renders').set('x-customer-id', 'laggy').expect(429) // stale data, refreshing
    await new Promise((resolve) => setTimeout(resolve, 50))
    await request(app.callback()).post('/renders').set('x-customer-id', 'laggy').expect(429) // refreshed data, still lagging
    assert.ok(lagging.planshipCalls().entitlements > fetchesBefore, 'the entitlements were fetched again')
    await lagging.close()
  })
})

async function fetchEntitlements(h: Harness, customer: string): Promise<Record<string, unknown>> {
  const client = new Planship(
    h.emu.productSlug,
    { clientId: h.emu.clientId, clientSecret: h.emu.clientSecret },
    { baseUrl: h.emu.url },
  )
  return (await client.getEntitlements(customer)) as Record<string, unknown>
}
