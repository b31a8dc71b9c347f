import assert from 'node:assert/strict'
import Koa from 'koa'
import request from 'supertest'
import { createMeter, type PlanshipState } from '../../src/index.js'
import { appWith, type Harness, startHarness } from '../helpers/harness.js'

describe('close() and requests around it', () => {
  let h: Harness

  beforeEach(async () => {
    h = await startHarness()
  })
  afterEach(() => h.close())

  it('refuses, never loses, a request whose decision was still waiting for Planship when close() began', async () => {
    const meter = createMeter(h.options)
    const koa = appWith(meter.consume('api-call', { cost: 2 }))
    h.emu.setLatency(300) // a cold decision: token, then entitlements and usage
    const answered = request(koa.callback())
      .post('/')
      .set('x-customer-id', 'pro-customer')
      .then((res) => res)
    await new Promise((resolve) => setTimeout(resolve, 100))
    const { undelivered } = await meter.close()
    const res = await answered
    assert.equal(res.status, 503, 'refused: nothing would deliver its usage any more')
    assert.equal(res.body.error.code, 'planship_unavailable')
    assert.deepEqual(undelivered, [])
    assert.equal(h.emu.recordedUsage(), 0)
  })

  it('says so when a request outlives closeTimeoutMs: its usage is not recorded, and it is logged', async () => {
    const meter = createMeter({ ...h.options, reporting: { closeTimeoutMs: 100 } })
    // close() begins once the request was admitted (a request still deciding would be refused).
    let admitted: () => void = () => {}
    const handlerStarted = new Promise<void>((resolve) => (admitted = resolve))
    const koa = appWith(meter.consume('api-call', { cost: 2 }), async (_ctx, next) => {
      admitted()
      await new Promise((resolve) => setTimeout(resolve, 300))
      return next()
    })
    const answered = request(koa.callback())
      .post('/')
      .set('x-customer-id', 'pro-customer')
      .then((res) => res)
    await handlerStarted
    await meter.close()
    assert.equal((await answered).status, 200)
    assert.equal(h.emu.recordedUsage(), 0)
    assert.ok(h.logger.lines.some((line) => line.startsWith('error usage committed after close() finished draining')))
  })

  it('waits for requests still running to commit their usage before the last flush', async () => {
    const meter = createMeter(h.options)
    let release: () => void = () => {}
    const handlerStarted = new Promise<void>((started) => {
      const koa = new Koa<PlanshipState>()
      koa.use(meter.consume('api-call', { cost: 3 }))
      koa.use(async (ctx) => {
        started()
        await new Promise<void>((resolve) => (release = resolve))
        ctx.body = 'slow'
      })
      void request(koa.callback())
        .get('/')
        .set('x-customer-id', 'pro-customer')
        .then(() => {})
    })
    await handlerStarted
    const closing = meter.close()
    setTimeout(() => release(), 100)
    const { undelivered } = await closing
    assert.deepEqual(undelivered, [])
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 3)
  })

  it('refuses metered requests after close() with 503, so no usage is admitted that nothing would send', async () => {
    const meter = createMeter(h.options)
    const koa = new Koa<PlanshipState>()
    koa.use(meter.consume('api-call'))
    koa.use((ctx) => {
      ctx.body = 'ran'
    })
    await request(koa.callback()).get('/').set('x-customer-id', 'pro-customer').expect(200)
    await meter.close()
    const res = await request(koa.callback()).get('/').set('x-customer-id', 'pro-customer').expect(503)
    assert.equal(res.body.error.code, 'planship_unavailable')
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 1)
  })
})
