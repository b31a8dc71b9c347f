import assert from 'node:assert/strict'
import Router from '@koa/router'
import Koa from 'koa'
import request from 'supertest'
import { createMeter, type PlanshipState } from '../../src/index.js'
import { type Harness, startHarness } from '../helpers/harness.js'

describe('identify and customer ids', () => {
  let h: Harness

  beforeEach(async () => {
    h = await startHarness()
  })
  afterEach(() => h.close())

  const awkwardIds = [
    'ada@example.com',
    'stripe:cus_Qv7TP2s0BZ6XAV',
    'team/alpha/beta',
    'with spaces and + plus',
    'ünïcødé-客户-🚀',
    '50% off?#frag&x=y',
  ]

  it('round-trips alternative ids with @, :, /, spaces and unicode through enforcement and reporting', async () => {
    for (const id of awkwardIds) h.emu.createCustomer(id, 'pro')
    // Headers cannot carry raw unicode, so this app's clients send the id URI-encoded.
    const meter = createMeter({
      ...h.options,
      identify: (ctx) => decodeURIComponent(ctx.get('x-customer')) || undefined,
    })
    const app = new Koa<PlanshipState>()
    const router = new Router<PlanshipState>()
    router.post('/calls', meter.consume('api-call'), (ctx) => {
      ctx.body = { customer: ctx.state.planship?.customerId }
    })
    router.get('/export', meter.requireFeature('csv-export'), (ctx) => {
      ctx.body = 'ok'
    })
    app.use(meter.middleware())
    app.use(router.routes())
    for (const id of awkwardIds) {
      const res = await request(app.callback()).post('/calls').set('x-customer', encodeURIComponent(id)).expect(200)
      assert.equal(res.body.customer, id)
      await request(app.callback()).post('/calls').set('x-customer', encodeURIComponent(id)).expect(200)
      await request(app.callback()).get('/export').set('x-customer', encodeURIComponent(id)).expect(200)
    }
    await meter.flush()
    for (const id of awkwardIds) assert.equal(h.emu.recordedUsage({ customerId: id, meteringId: 'api-call' }), 2, id)
    await meter.close()
  })

  it('treats an identify result that cannot be a customer id as unidentified (401)', async () => {
    const values: unknown[] = ['', undefined, null, 42, { id: 'x' }, 'x'.repeat(1025), 'bad\u0000id', 'line\nbreak']
    for (const value of values) {
      const meter = createMeter({ ...h.options, identify: () => value as string })
      const app = new Koa<PlanshipState>()
      app.use(meter.consume('api-call'))
      app.use((ctx) => {
        ctx.body = 'ran'
      })
      const res = await request(app.callback()).get('/').expect(401)
      assert.equal(res.body.error.code, 'customer_unidentified', String(value))
      await meter.close()
    }
  })

  it('answers 500 when identify throws, and other requests are unaffected', async () => {
    const meter = createMeter({
      ...h.options,
      identify: (ctx) => {
        if (ctx.get('x-customer-id') === 'explode') throw new Error('auth store down')
        return ctx.get('x-customer-id') || undefined
      },
    })
    const app = new Koa<PlanshipState>()
    app.silent = true
    app.use(meter.consume('api-call'))
    app.use((ctx) => {
      ctx.body = 'ran'
    })
    await request(app.callback()).get('/').set('x-customer-id', 'explode').expect(500)
    await request(app.callback()).get('/').set('x-customer-id', 'pro-customer').expect(200, 'ran')
    await meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 1)
    await meter.close()
  })
})
