import assert from 'node:assert/strict'
import express from 'express'
import Koa from 'koa'
import request from 'supertest'
import { createMeter as createExpressMeter } from '../../src/express/index.js'
import { createMeter, type DecisionRecord, type PlanshipState } from '../../src/index.js'
import { eachHarness, startHarness } from '../helpers/harness.js'

describe("mode: 'shadow'", () => {
  const harness = eachHarness((onEvent) => startHarness({ meter: { onEvent } }))
  const events = harness.events

  it('per meter: decides and reports as usual, records what it would have denied, lets every request through', async () => {
    const h = harness()
    h.emu.createCustomer('shadowed', 'free')
    const meter = createMeter({ ...h.options, mode: 'shadow' })
    const app = new Koa<PlanshipState>()
    app.use(meter.middleware())
    app.use(meter.consume('render'))
    app.use((ctx) => {
      ctx.body = { decisions: ctx.state.planship.decisions }
    })
    const responses = []
    for (let i = 0; i < 7; i++)
      responses.push(await request(app.callback()).post('/').set('x-customer-id', 'shadowed').expect(200))
    const decisions = responses.map((res) => (res.body.decisions as DecisionRecord[])[0]!)
    assert.deepEqual(
      decisions.map((d) => [d.allowed, d.shadow]),
      [...Array(5).fill([true, undefined]), [false, true], [false, true]],
    )
    assert.equal(decisions[5]!.lever, 'renders-per-minute')
    // The would-be 429 says how things stand, but there is nothing to retry.
    assert.equal(responses[6]!.headers['ratelimit'], '"renders-per-minute";r=0;t=60')
    assert.equal(responses[6]!.headers['retry-after'], undefined)
    const shadowDenials = events.filter((e) => e.type === 'denial' && e.shadow === true)
    assert.equal(shadowDenials.length, 2)
    assert.equal(events.filter((e) => e.type === 'decision' && e.shadow === true).length, 2)
    await meter.close()
    assert.equal(h.emu.recordedUsage({ customerId: 'shadowed', meteringId: 'render' }), 7, 'all 7 are billed')
  })

  it('never bills a customer Planship does not know: the report would only be refused', async () => {
    const h = harness()
    const meter = createMeter({ ...h.options, mode: 'shadow' })
    const app = new Koa<PlanshipState>()
    app.use(meter.consume('api-call'))
    app.use((ctx) => {
      ctx.body = 'ok'
    })
    await request(app.callback()).post('/').set('x-customer-id', 'nobody@example.com').expect(200)
    await meter.close()
    assert.equal(meter.deliveryStats().rejectedUnits, 0, 'nothing was queued for Planship to refuse')
    assert.equal(h.emu.meteringRecords().length, 0)
  })

  it('per route, on Express: a feature gate and an unidentified request go through, recorded as shadow', async () => {
    const h = harness()
    const { onDenied: _koaOnly, ...shared } = h.options
    const meter = createExpressMeter({ ...shared, identify: (req) => req.get('x-customer-id') })
    const app = express()
    app.get('/export', meter.requireFeature('csv-export', { mode: 'shadow' }), (_req, res) => {
      res.json(res.locals.planship.decisions)
    })
    app.get('/enforced', meter.requireFeature('csv-export'), (_req, res) => {
      res.json({})
    })
    const res = await request(app).get('/export').set('x-customer-id', 'free-customer').expect(200)
    assert.deepEqual(res.body, [
      { kind: 'feature', subject: 'csv-export', allowed: false, source: 'fresh', lever: 'csv-export', shadow: true },
    ])
    await request(app).get('/export').expect(200)
    await request(app).get('/enforced').set('x-customer-id', 'free-customer').expect(403)
    await meter.close()
  })

  it('the neutral API follows the mode too, and the route can opt back into enforcement', async () => {
    const h = harness()
    h.emu.createCustomer('shadow-worker', 'free')
    const meter = createMeter({ ...h.options, mode: 'shadow' })
    for (let i = 0; i < 6; i++) {
      const reservation = await meter.reserve('shadow-worker', 'render')
      assert.ok(reservation.allowed)
      await reservation.commit()
    }
    const enforced = await meter.reserve('shadow-worker', 'render', { mode: 'enforce' })
    assert.equal(enforced.allowed ? 'allowed' : enforced.denial.code, 'quota_exceeded')
    assert.equal(await meter.isEntitled('free-customer', 'csv-export'), true, 'shadow never denies')
    await meter.close()
    assert.equal(h.emu.recordedUsage({ customerId: 'shadow-worker', meteringId: 'render' }), 6)
  })

  it('rejects an unknown mode with a TypeError naming the option', () => {
    const h = harness()
    assert.throws(() => createMeter({ ...h.options, mode: 'dry-run' as 'shadow' }), /option `mode`/)
    assert.throws(() => h.meter.consume('render', { mode: 'off' as 'shadow' }), /option `mode`/)
  })
})
