import assert from 'node:assert/strict'
import type { Server } from 'node:http'
import express from 'express'
import request from 'supertest'
import { createMeter } from '../../src/express/index.js'
import { type ExpressHarness, expressDemoApp, jsonErrors, listen, startExpressHarness } from '../helpers/express.js'

describe('Express: consume()', () => {
  let h: ExpressHarness
  let server: Server
  let handled: { count: number }

  beforeEach(async () => {
    h = await startExpressHarness()
    const demo = expressDemoApp(h.meter)
    handled = demo.handled
    server = listen(demo.app)
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

  it('answers 429 with the same body and headers as on Koa, without running the handler', async () => {
    h.emu.createCustomer('quota@example.com', 'free')
    for (let i = 0; i < 5; i++) await call('/renders', 'quota@example.com').expect(200)
    const before = handled.count

    const denied = await call('/renders', 'quota@example.com').expect(429)

    assert.equal(handled.count, before)
    assert.deepEqual(denied.body, {
      error: {
        code: 'quota_exceeded',
        message: "The customer's renders-per-minute allowance is used up",
        lever: 'renders-per-minute',
      },
    })
    assert.equal(denied.headers['ratelimit'], '"renders-per-minute";r=0;t=60')
    assert.equal(denied.headers['ratelimit-policy'], '"renders-per-minute";q=5;w=60')
    assert.equal(denied.headers['retry-after'], '60')
  })

  it('admits exactly 5 of 50 concurrent requests of a customer with 5 units left', async () => {
    h.emu.createCustomer('burst-customer', 'free')
    const responses = await Promise.all(Array.from({ length: 50 }, () => call('/renders', 'burst-customer')))

    const counts = responses.reduce<Record<number, number>>(
      (acc, res) => ({ ...acc, [res.status]: (acc[res.status] ?? 0) + 1 }),
      {},
    )
    assert.deepEqual(counts, { 200: 5, 429: 45 })
    assert.equal(handled.count, 5)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'burst-customer', meteringId: 'render' }), 5)
  })

  it('puts the customer id on res.locals.planship and serves a warm request with no upstream call', async () => {
    const first = await call('/renders', 'pro-customer').expect(200)
    assert.equal(first.body.customer, 'pro-customer')
    await call('/calls', 'pro-customer').expect(200)
    h.emu.resetRequestCounts()
    for (let i = 0; i < 25; i++) await call('/calls', 'pro-customer').expect(200)
    assert.deepEqual(h.emu.requestCounts(), {})
  })

  it('identifies nobody without the header: 401 customer_unidentified', async () => {
    const res = await call('/calls').expect(401)
    assert.equal(res.body.error.code, 'customer_unidentified')
    assert.equal(handled.count, 0)
  })

  it('does not report failed responses: a 500, a thrown error and a rejected promise release their reservation', async () => {
    h.emu.createCustomer('failing', 'free')
    const app = express()
    app.use(h.meter.middleware())
    app.post('/fail', h.meter.consume('render'), (_req, res) => {
      res.status(500).json({ error: 'boom' })
    })
    app.post('/throw', h.meter.consume('render'), () => {
      throw new Error('handler crashed')
    })
    app.post('/reject', h.meter.consume('render'), async () => {
      throw new Error('async handler crashed')
    })
    app.use(jsonErrors)
    for (let i = 0; i < 5; i++) {
      for (const path of ['/fail', '/throw', '/reject'])
        await request(app).post(path).set('x-customer-id', 'failing').expect(500)
    }
    // Fifteen failures consumed nothing: all 5 renders of the minute are still there.
    for (let i = 0; i < 5; i++) await call('/renders', 'failing').expect(200)
    await call('/renders', 'failing').expect(429)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'failing', meteringId: 'render' }), 5)
  })

  it('reserves a dynamic cost, reports a usage read after the handler, under a bucket', async () => {
    const app = express()
    app.get(
      '/rows',
      h.meter.consume('api-call', {
        cost: (req) => Number(req.query['limit']),
        usage: (_req, res) => Number(res.get('x-rows')),
        bucket: (req) => req.get('x-project'),
      }),
      (_req, res) => {
        res.set('x-rows', '3').json([0, 1, 2])
      },
    )
    await request(app).get('/rows?limit=10').set('x-customer-id', 'pro-customer').set('x-project', 'proj A').expect(200)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call', bucket: 'proj A' }), 3)
  })

  it('reads usage once the response has finished, not when the handler returns', async () => {
    const app = express()
    let rows = 0
    app.get('/stream', h.meter.consume('api-call', { usage: () => rows }), (_req, res) => {
      res.write('[')
      // The handler returns at once; the rows are counted as the response goes out.
      setTimeout(() => {
        rows = 7
        res.end(']')
      }, 20)
    })
    await request(app).get('/stream').set('x-customer-id', 'pro-customer').expect(200)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 7)
  })

  it('lets shouldReport decide from the finished response', async () => {
    const meter = createMeter({ ...h.options })
    const app = express()
    app.get(
      '/maybe',
      meter.consume('api-call', { shouldReport: (_req, res) => res.get('x-billable') === 'yes' }),
      (req, res) => {
        res.set('x-billable', String(req.query['billable'])).json({})
      },
    )
    await request(app).get('/maybe?billable=yes').set('x-customer-id', 'pro-customer').expect(200)
    await request(app).get('/maybe?billable=no').set('x-customer-id', 'pro-customer').expect(200)
    await meter.close()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 1)
  })

  it('limits a per-bucket lever per bucket', async () => {
    await h.close()
    h = await startExpressHarness({
      emulator: {
        fixture: {
          credentials: [{ clientId: 'bucket-id', clientSecret: 'bucket-secret' }],
          products: [
            {
              slug: 'bucket-api',
              levers: [
                {
                  slug: 'exports-per-project',
                  type: 'metered',
                  meteringIds: ['export'],
                  formula: 'per-bucket',
                  period: 'all-time',
                },
              ],
              plans: [{ slug: 'basic', entitlements: { 'exports-per-project': 2 } }],
            },
          ],
          customers: [{ alternativeId: 'bucketed', subscriptions: [{ product: 'bucket-api', plan: 'basic' }] }],
        },
      },
    })
    const app = express()
    app.post('/export', h.meter.consume('export', { bucket: (req) => req.get('x-project') }), (_req, res) => {
      res.json({})
    })
    const exportIn = (project: string) =>
      request(app).post('/export').set('x-customer-id', 'bucketed').set('x-project', project)
    await exportIn('A').expect(200)
    await exportIn('A').expect(200)
    await exportIn('A').expect(429)
    await exportIn('B').expect(200)
    await exportIn('B').expect(200)
    await exportIn('B').expect(429)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'bucketed', meteringId: 'export', bucket: 'A' }), 2)
    assert.equal(h.emu.recordedUsage({ customerId: 'bucketed', meteringId: 'export', bucket: 'B' }), 2)
  })
})
