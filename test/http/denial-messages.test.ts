import assert from 'node:assert/strict'
import request from 'supertest'
import { leversFixture } from '../helpers/fixtures.js'
import { appWith, type Harness, startHarness } from '../helpers/harness.js'

/** What a customer reads in a 429: counted right, and a lever the plan lacks is not "used up". */
describe('denial messages', () => {
  let h: Harness
  afterEach(() => h.close())

  it('says "1 is left" and "2 are left"', async () => {
    h = await startHarness()
    const koa = appWith(h.meter.consume('render', { cost: (ctx) => Number(ctx.get('x-cost')) }))
    const call = (cost: number) =>
      request(koa.callback()).post('/').set('x-customer-id', 'free-customer').set('x-cost', String(cost))
    await call(3).expect(200)
    const two = await call(3).expect(429)
    assert.equal(two.body.error.message, 'This request needs 3 units of renders-per-minute; 2 are left')
    await call(1).expect(200)
    const one = await call(2).expect(429)
    assert.equal(one.body.error.message, 'This request needs 2 units of renders-per-minute; 1 is left')
    await call(1).expect(200)
    const none = await call(1).expect(429)
    assert.equal(none.body.error.message, "The customer's renders-per-minute allowance is used up")
  })

  it('says the plan does not include a metered lever whose allowance is 0, not that it is used up', async () => {
    h = await startHarness({ emulator: { fixture: leversFixture } })
    const koa = appWith(h.meter.consume('gpu'))
    const res = await request(koa.callback()).post('/').set('x-customer-id', 'lever-customer').expect(429)
    assert.deepEqual(res.body.error, {
      code: 'quota_exceeded',
      message: "The customer's plan does not include gpu-minutes",
      lever: 'gpu-minutes',
    })
  })

  it('says only that nothing is left when the whole allowance is not known yet', async () => {
    h = await startHarness({ emulator: { fixture: leversFixture } })
    const koa = appWith(h.meter.consume('gpu'))
    h.emu.createCustomer('second-customer', 'basic')
    // The first customer teaches the meter which levers `gpu` feeds (its usage is read for that);
    // the second one's usage is not read before its first denial, so its whole allowance is unknown.
    await request(koa.callback()).post('/').set('x-customer-id', 'lever-customer').expect(429)
    const res = await request(koa.callback()).post('/').set('x-customer-id', 'second-customer').expect(429)
    assert.equal(res.body.error.message, 'The customer has no gpu-minutes left')
  })
})
