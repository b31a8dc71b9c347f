import assert from 'node:assert/strict'
import request from 'supertest'
import { createMeter } from '../../src/index.js'
import { appWith, type Harness, startHarness } from '../helpers/harness.js'

describe('denials', () => {
  let h: Harness
  beforeEach(async () => {
    h = await startHarness()
  })
  afterEach(() => h.close())

  it('a custom onDenied that only writes a body still answers with the denial’s status and headers', async () => {
    const meter = createMeter({
      ...h.options,
      onDenied: (ctx) => {
        ctx.body = { sorry: true }
      },
    })
    const koa = appWith(meter.consume('api-call', { cost: 70 }))
    const call = (customer?: string) => {
      const req = request(koa.callback()).post('/')
      return customer === undefined ? req : req.set('x-customer-id', customer)
    }
    await call('free-customer').expect(200)
    const denied = await call('free-customer').expect(429)
    assert.deepEqual(denied.body, { sorry: true })
    assert.equal(denied.headers['ratelimit'], '"api-calls";r=30')
    const unidentified = await call().expect(401)
    assert.deepEqual(unidentified.body, { sorry: true })
    await meter.close()
  })

  it('a 429 for a cost larger than what is left says so, instead of "used up"', async () => {
    const koa = appWith(h.meter.consume('api-call', { cost: (ctx) => Number(ctx.get('x-cost')) }))
    const call = (cost: number) =>
      request(koa.callback()).post('/').set('x-customer-id', 'free-customer').set('x-cost', String(cost))
    await call(40).expect(200)
    const tooBig = await call(70).expect(429)
    assert.equal(tooBig.body.error.message, 'This request needs 70 units of api-calls; 60 are left')
    assert.equal(tooBig.headers['ratelimit'], '"api-calls";r=60')
    await call(60).expect(200)
    const usedUp = await call(1).expect(429)
    assert.equal(usedUp.body.error.message, "The customer's api-calls allowance is used up")
  })
})
