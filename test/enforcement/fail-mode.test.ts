import assert from 'node:assert/strict'
import Koa from 'koa'
import request from 'supertest'
import { startEmulator } from '../../src/emulator/index.js'
import { createMeter, type DecisionRecord, type Meter, type PlanshipState } from '../../src/index.js'
import { type Harness, manualClock, startHarness } from '../helpers/harness.js'

/** One route consuming api-call that echoes the decision taken. */
function app(meter: Meter): Koa<PlanshipState> {
  const koa = new Koa<PlanshipState>()
  koa.use(meter.consume('api-call'))
  koa.use((ctx) => {
    ctx.body = { decision: ctx.state.planship?.decisions[0] }
  })
  return koa
}

describe('decisions when Planship is down', () => {
  let h: Harness

  beforeEach(async () => {
    h = await startHarness()
  })
  afterEach(() => h.close())

  it("failMode 'open' admits with a cold cache and the emulator stopped, and still reports the usage later", async () => {
    const port = Number(new URL(h.emu.url).port)
    await h.emu.close()
    const res = await request(app(h.meter).callback()).get('/').set('x-customer-id', 'pro-customer').expect(200)
    assert.equal((res.body.decision as DecisionRecord).source, 'fail-open')
    await assert.rejects(h.meter.flush(), { code: 'FLUSH_INCOMPLETE' })

    h.emu = await startEmulator({ port })
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 1)
  })

  it("failMode 'closed' answers 503 planship_unavailable with a cold cache and the emulator stopped", async () => {
    const meter = createMeter({ ...h.options, failMode: 'closed' })
    await h.emu.close()
    const res = await request(app(meter).callback()).get('/').set('x-customer-id', 'pro-customer').expect(503)
    assert.deepEqual(res.body, {
      error: { code: 'planship_unavailable', message: 'Entitlements cannot be checked right now; try again later' },
    })
    assert.equal(await meter.close().then((r) => r.undelivered.length), 0, 'a refused request reports nothing')
  })

  it('serves stale data while the emulator is down, up to maxStaleMs, then applies failMode', async () => {
    const clock = manualClock()
    const meter = createMeter({ ...h.options, clock, failMode: 'closed', cache: { ttlMs: 1_000, maxStaleMs: 10_000 } })
    const koa = app(meter)
    const get = () => request(koa.callback()).get('/').set('x-customer-id', 'pro-customer')
    assert.equal((await get().expect(200)).body.decision.source, 'fresh')
    await h.emu.close()

    clock.advance(5_000)
    assert.equal((await get().expect(200)).body.decision.source, 'stale')
    clock.advance(2_000)
    assert.equal((await get().expect(200)).body.decision.source, 'stale', 'a failed refresh keeps the stale data')
    clock.advance(4_500) // 11.5 s old: past ttl + maxStale
    await get().expect(503)
    await meter.close()
  })

  it('keeps enforcing the quota from stale data while Planship is down', async () => {
    const clock = manualClock()
    h.emu.createCustomer('stale-quota', 'free')
    const meter = createMeter({ ...h.options, clock, cache: { ttlMs: 1_000 } })
    const koa = new Koa<PlanshipState>()
    koa.use(meter.consume('render'))
    koa.use((ctx) => {
      ctx.body = 'ok'
    })
    const post = () => request(koa.callback()).post('/').set('x-customer-id', 'stale-quota')
    await post().expect(200)
    await h.emu.close()
    clock.advance(2_000)
    for (let i = 0; i < 4; i++) await post().expect(200)
    await post().expect(429)
    const { undelivered } = await meter.close()
    assert.equal(
      undelivered.reduce((sum, r) => sum + r.usage, 0),
      5,
      'close() hands back what Planship could not take',
    )
  })

  it('confirms a denial from stale data with a fresh read: a window that moved on gives the allowance back at once', async () => {
    const clock = manualClock()
    h.emu.createCustomer('back-from-a-break', 'free')
    const meter = createMeter({ ...h.options, clock, cache: { ttlMs: 1_000 } })
    const render = () => meter.reserve('back-from-a-break', 'render')
    try {
      for (let i = 0; i < 5; i++) {
        const decision = await render()
        assert.ok(decision.allowed)
        await decision.commit()
      }
      assert.equal((await render()).allowed, false, 'the 5 renders of the minute are used')
      await meter.flush()
      // A minute and more later (and past the aggregation lag) the window is empty again; the
      // cached entitlements, 6 s old, are stale and still say 0 left.
      h.emu.advanceClock(61_000)
      clock.advance(6_000)
      const decision = await render()
      assert.ok(decision.allowed, 'not denied from the stale snapshot')
      await decision.release()
    } finally {
      await meter.close()
    }
  })

  it('sends Planship about one call per backoff during an outage, however many customers and requests', async () => {
    const url = h.emu.url
    await h.emu.close()
    let attempts = 0
    const counting: typeof fetch = (input, init) => {
      attempts++
      return fetch(input, init)
    }
    const meter = createMeter({ ...h.options, planship: { ...h.options.planship, baseUrl: url }, fetch: counting })
    const koa = app(meter)
    await Promise.all(
      Array.from({ length: 50 }, () => request(koa.callback()).get('/').set('x-customer-id', 'pro-customer')),
    )
    assert.ok(attempts <= 2, `${attempts} upstream attempts for 50 requests`)
    await meter.close()
  })

  it('refuses a request that would add a key past reporting.maxPendingKeys, and counts it', async () => {
    const meter = createMeter({ ...h.options, reporting: { ...h.options.reporting, maxPendingKeys: 2 } })
    const koa = app(meter)
    await h.emu.close() // nothing gets delivered: the backlog only grows
    for (const customer of ['one', 'two'])
      await request(koa.callback()).get('/').set('x-customer-id', customer).expect(200)
    await request(koa.callback()).get('/').set('x-customer-id', 'one').expect(200) // an existing key still aggregates
    const refused = await request(koa.callback()).get('/').set('x-customer-id', 'three').expect(503)
    assert.equal(refused.body.error.message, 'Usage cannot be recorded right now; try again later')
    assert.equal(meter.deliveryStats().backlogRefusals, 1)
    const { undelivered } = await meter.close() // Planship stays down: handed back after closeTimeoutMs
    assert.deepEqual(undelivered.map((r) => [r.customerId, r.usage]).sort(), [
      ['one', 2],
      ['two', 1],
    ])
  })
})
