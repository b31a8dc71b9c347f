import assert from 'node:assert/strict'
import Koa from 'koa'
import request from 'supertest'
import { createMeter, type Meter, type PlanshipState } from '../../src/index.js'
import { type Harness, manualClock, startHarness, until } from '../helpers/harness.js'

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** `count` admitted api-call requests of pro-customer through `meter`. */
async function consume(meter: Meter, count: number): Promise<void> {
  const koa = new Koa<PlanshipState>()
  koa.use(meter.consume('api-call'))
  koa.use((ctx) => {
    ctx.body = 'ok'
  })
  for (let i = 0; i < count; i++)
    await request(koa.callback()).get('/').set('x-customer-id', 'pro-customer').expect(200)
}

describe('delivery when reports fail', () => {
  let h: Harness

  beforeEach(async () => {
    h = await startHarness()
  })
  afterEach(() => h.close())

  const recorded = () => h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' })

  it('at least once: sends again a report that was applied but answered 500, and counts it as possibly duplicated', async () => {
    await consume(h.meter, 4)
    h.emu.setFaults({ seed: 7, rules: [{ route: 'reportUsage', kind: 'apply-then-fail', status: 500 }] })
    await assert.rejects(h.meter.flush(), { code: 'FLUSH_INCOMPLETE' })
    h.emu.clearFaults()
    await h.meter.flush()

    const stats = h.meter.deliveryStats()
    assert.equal(recorded(), 8, 'Planship applied both attempts')
    assert.equal(stats.possiblyDuplicatedUnits, 4)
    assert.equal(
      recorded() - 4,
      stats.possiblyDuplicatedUnits,
      'the overcount is exactly what was reported as possible',
    )
  })

  it('at most once: does not send it again, and counts it as possibly lost', async () => {
    const meter = createMeter({ ...h.options, reporting: { ...h.options.reporting, delivery: 'at-most-once' } })
    await consume(meter, 4)
    h.emu.setFaults({ rules: [{ route: 'reportUsage', kind: 'apply-then-fail', mode: 'reset' }] })
    const error = await meter.flush().catch((e: unknown) => e)
    assert.equal((error as { code?: string }).code, 'FLUSH_INCOMPLETE')
    h.emu.clearFaults()
    await meter.flush()

    assert.equal(recorded(), 4, 'applied once, never sent again')
    assert.equal(meter.deliveryStats().possiblyLostUnits, 4)
    await meter.close()
  })

  it('at most once still keeps usage whose report never left (the token request failed)', async () => {
    let tokenFails = false
    const flaky: typeof fetch = (input, init) =>
      tokenFails && String(input).endsWith('/auth/token')
        ? Promise.resolve(new Response('upstream error', { status: 500 }))
        : fetch(input, init)
    const meter = createMeter({
      ...h.options,
      fetch: flaky,
      reporting: { ...h.options.reporting, delivery: 'at-most-once' },
    })
    await consume(meter, 3)
    tokenFails = true
    h.emu.revokeTokens() // the report's 401 asks for a new token, which fails
    await assert.rejects(meter.flush(), { code: 'FLUSH_INCOMPLETE' })
    tokenFails = false
    await meter.flush()
    assert.equal(recorded(), 3)
    assert.equal(meter.deliveryStats().possiblyLostUnits, 0)
    await meter.close()
  })

  it('retries a clean failure without counting a possible duplicate, honouring Retry-After', async () => {
    const clock = manualClock()
    const meter = createMeter({ ...h.options, clock, reporting: { flushIntervalMs: 20, closeTimeoutMs: 1_000 } })
    // Faults first: a background pass between the two requests must not deliver the first unit.
    h.emu.setFaults({ rules: [{ route: 'reportUsage', kind: 'rate-limit', retryAfterS: 60 }] })
    await consume(meter, 2)
    await until(() => (h.emu.requestCounts()['reportUsage'] ?? 0) >= 1)
    assert.ok((h.emu.requestCounts()['reportUsage'] ?? 0) >= 1, 'a background pass tried')
    h.emu.clearFaults()
    await settle(150)
    assert.equal(recorded(), 0, 'Planship asked for 60 s: the background passes wait')
    clock.advance(60_001)
    await until(() => recorded() === 2)
    assert.equal(recorded(), 2)
    const stats = meter.deliveryStats()
    assert.equal(stats.possiblyDuplicatedUnits, 0, 'a 429 was not applied')
    assert.ok(stats.retries >= 1)
    await meter.close()
  })
})
