import assert from 'node:assert/strict'
import Router from '@koa/router'
import Koa from 'koa'
import request from 'supertest'
import { Planship } from '@planship/fetch'
import { createMeter, type DecisionRecord, type PlanshipState } from '../../src/index.js'
import { assertRendersUntouched, demoApp, eachServedDemo, type Harness, startHarness } from '../helpers/harness.js'

describe('consume()', () => {
  const { harness, call } = eachServedDemo(startHarness, demoApp)

  it('holds the line on a quota that was mostly used elsewhere (95 of 100 api calls)', async () => {
    const h = harness()
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
    const h = harness()
    const customers = ['pro-customer', 'free-customer']
    for (const customer of customers) for (let i = 0; i < 30; i++) await call('/calls', customer).expect(200)
    h.emu.resetRequestCounts()

    const result = await h.meter.flush()

    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 30)
    assert.equal(h.emu.recordedUsage({ customerId: 'free-customer', meteringId: 'api-call' }), 30)
    assert.equal(h.emu.requestCounts()['reportUsage'], 2, '60 requests, 2 report calls')
    assert.deepEqual({ reports: result.reports, units: result.units }, { reports: 2, units: 60 })
  })

  it('keeps denying from cache: a repeated 429 makes no upstream call', async () => {
    const h = harness()
    h.emu.createCustomer('denied-warm', 'free')
    for (let i = 0; i < 5; i++) await call('/renders', 'denied-warm').expect(200)
    await call('/renders', 'denied-warm').expect(429)
    await new Promise((resolve) => setTimeout(resolve, 50)) // the header's background read, if any
    h.emu.resetRequestCounts()
    for (let i = 0; i < 10; i++) await call('/renders', 'denied-warm').expect(429)
    assert.deepEqual(h.emu.requestCounts(), {})
  })

  it('releases the reservation of a request that fails (status >= 400) and reports nothing for it', async () => {
    const h = harness()
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
    await assertRendersUntouched(h, 'failing', () => call('/renders', 'failing'))
  })

  it('reserves a dynamic cost, reports a usage read after the handler, under a bucket', async () => {
    const h = harness()
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
    const h = harness()
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

describe('consume() decision records', () => {
  it('shares one frozen record per metering id and source between admitted requests, and builds a denial’s own', async () => {
    const h = await startHarness()
    const app = new Koa()
    const router = new Router()
    const seen: DecisionRecord[] = []
    app.use(async (ctx, next) => {
      await next()
      seen.push(...(ctx.state['planship'] as { decisions: DecisionRecord[] }).decisions)
    })
    app.use(h.meter.middleware())
    router.get('/v1/widgets', h.meter.consume('api-call', { cost: 60 }), (ctx) => {
      ctx.body = 'ok'
    })
    app.use(router.routes())
    const call = () => request(app.callback()).get('/v1/widgets')
    await call().set('x-customer-id', 'pro-customer').expect(200)
    await call().set('x-customer-id', 'free-customer').expect(200)
    await call().set('x-customer-id', 'free-customer').expect(429) // 100 api calls: 60 + 60 do not fit
    const [first, second, denied] = seen
    assert.equal(first, second, 'the same record for both admissions')
    assert.ok(Object.isFrozen(first))
    assert.deepEqual(first, { kind: 'consume', subject: 'api-call', allowed: true, source: 'fresh' })
    assert.deepEqual(denied, {
      kind: 'consume',
      subject: 'api-call',
      allowed: false,
      source: 'fresh',
      lever: 'api-calls',
    })
    assert.ok(!Object.isFrozen(denied))
    await h.close()
  })
})
