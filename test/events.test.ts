import assert from 'node:assert/strict'
import Koa from 'koa'
import request from 'supertest'
import { createMeter, type MeterEvent, type PlanshipState } from '../src/index.js'
import { type Harness, startHarness } from './helpers/harness.js'

describe('onEvent', () => {
  let h: Harness
  const events: MeterEvent[] = []

  beforeEach(async () => {
    events.length = 0
    h = await startHarness({ meter: { onEvent: (event) => events.push(event) } })
  })
  afterEach(() => h.close())

  const app = (meter = h.meter) => {
    const koa = new Koa<PlanshipState>()
    koa.use(meter.consume('render'))
    koa.use((ctx) => {
      ctx.body = 'ok'
    })
    return koa.callback()
  }

  it('tells decisions, denials, flushes, retries, drops and errors, with no secret or token in any', async () => {
    h.emu.createCustomer('evented', 'free')
    for (let i = 0; i < 6; i++) await request(app()).post('/').set('x-customer-id', 'evented')
    h.emu.setFaults({ rules: [{ route: 'reportUsage', kind: 'error', status: 503 }] })
    await h.meter.flush().catch(() => {})
    h.emu.clearFaults()
    await h.meter.flush()
    // A customer Planship does not know, admitted while Planship was down: its report is refused.
    h.emu.setDown(true)
    await request(app()).post('/').set('x-customer-id', 'ghost@example.com').expect(200)
    h.emu.setDown(false)
    await h.meter.flush().catch(() => {})

    const types = new Set(events.map((event) => event.type))
    assert.deepEqual([...types].sort(), ['decision', 'denial', 'drop', 'error', 'flush', 'retry'])
    const decisions = events.filter((event) => event.type === 'decision')
    assert.equal(decisions.filter((event) => event.allowed).length, 6) // 5 renders + the ghost, fail-open
    assert.ok(decisions.some((event) => event.source === 'fail-open'))
    const denial = events.find((event) => event.type === 'denial')
    assert.equal(denial?.type === 'denial' && denial.denial.code, 'quota_exceeded')
    assert.ok(events.some((event) => event.type === 'drop' && event.reason === 'rejected'))
    const everything = JSON.stringify(events) + h.logger.lines.join('\n')
    assert.doesNotMatch(everything, /demo-client-secret|Bearer|access_token/)
  })

  it('ignores a listener that throws', async () => {
    const meter = createMeter({
      ...h.options,
      onEvent: () => {
        throw new Error('metrics backend down')
      },
    })
    await request(app(meter)).post('/').set('x-customer-id', 'pro-customer').expect(200)
    await meter.flush()
    await meter.close()
  })

  it('applies a per-route failMode', async () => {
    const meter = createMeter({ ...h.options, failMode: 'open' })
    const koa = new Koa<PlanshipState>()
    koa.use(meter.consume('api-call', { failMode: 'closed' }))
    koa.use((ctx) => {
      ctx.body = 'ok'
    })
    const feature = new Koa<PlanshipState>()
    feature.use(meter.requireFeature('csv-export'))
    feature.use((ctx) => {
      ctx.body = 'ok'
    })
    h.emu.setDown(true)
    await request(koa.callback()).get('/').set('x-customer-id', 'pro-customer').expect(503)
    await request(feature.callback()).get('/').set('x-customer-id', 'pro-customer').expect(200) // the meter's open
    h.emu.setDown(false)
    await meter.close()
  })
})
