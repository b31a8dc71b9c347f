import assert from 'node:assert/strict'
import Router from '@koa/router'
import Koa from 'koa'
import request from 'supertest'
import { createMeter } from '../../src/index.js'
import { demoApp, type Harness, startHarness } from '../helpers/harness.js'

describe('requireFeature()', () => {
  let h: Harness

  beforeEach(async () => {
    h = await startHarness()
  })
  afterEach(() => h.close())

  it('treats -1 (unlimited) and non-zero integers as entitled, 0 and missing levers as not', async () => {
    const app = new Koa()
    const router = new Router()
    router.get('/projects', h.meter.requireFeature('max-projects'), (ctx) => {
      ctx.body = 'ok'
    })
    router.get('/unknown', h.meter.requireFeature('no-such-lever'), (ctx) => {
      ctx.body = 'ok'
    })
    app.use(router.routes())
    await request(app.callback()).get('/projects').set('x-customer-id', 'pro-customer').expect(200) // -1
    await request(app.callback()).get('/projects').set('x-customer-id', 'free-customer').expect(200) // 3
    await request(app.callback()).get('/unknown').set('x-customer-id', 'pro-customer').expect(403)
  })

  it('answers 401 when no customer is identified, and lets onDenied write the answer', async () => {
    const seen: string[] = []
    const meter = createMeter({
      ...h.options,
      onDenied: (ctx, denial) => {
        seen.push(denial.code)
        ctx.status = denial.status === 403 ? 402 : denial.status
        ctx.body = `denied: ${denial.code}`
      },
    })
    const { app } = demoApp(meter)
    await request(app.callback()).get('/export').expect(401, 'denied: customer_unidentified')
    await request(app.callback()).get('/export').set('x-customer-id', 'free-customer').expect(402)
    assert.deepEqual(seen, ['customer_unidentified', 'feature_not_entitled'])
    await meter.close()
  })

  it('records each decision and its source on ctx.state.planship', async () => {
    const app = new Koa()
    let state: unknown
    app.use(h.meter.middleware())
    app.use(h.meter.requireFeature('csv-export'))
    app.use((ctx) => {
      state = ctx.state['planship']
      ctx.body = 'ok'
    })
    await request(app.callback()).get('/').set('x-customer-id', 'pro-customer').expect(200)
    assert.deepEqual(state, {
      customerId: 'pro-customer',
      decisions: [{ kind: 'feature', subject: 'csv-export', allowed: true, source: 'fresh', lever: 'csv-export' }],
      reservations: {},
    })
  })
})

describe('requireFeature() for a customer Planship does not know', () => {
  it('answers 403 even with failMode open: a 404 is an answer, not an outage', async () => {
    const h = await startHarness({ meter: { failMode: 'open' } })
    const { app, handled } = demoApp(h.meter)
    const res = await request(app.callback()).get('/export').set('x-customer-id', 'nobody@example.com').expect(403)
    assert.equal(res.body.error.code, 'feature_not_entitled')
    assert.equal(handled.count, 0)
    await h.close()
  })
})
