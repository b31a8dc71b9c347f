import assert from 'node:assert/strict'
import { createMeter as createExpressMeter } from '../src/express/index.js'
import { createMeter, type MeterCore, PlanshipMeterError } from '../src/index.js'
import { eachHarness, startHarness } from './helpers/harness.js'

/** A queue worker: renders a job when the customer has room, and bills it only when it worked. */
async function worker(meter: MeterCore, job: { customer: string; fail?: boolean }): Promise<string> {
  const reservation = await meter.reserve(job.customer, 'render')
  if (!reservation.allowed) return reservation.denial.code
  try {
    if (job.fail) throw new Error('render failed')
    await reservation.commit()
    return 'done'
  } catch {
    await reservation.release()
    return 'failed'
  }
}

describe('the framework-neutral API', () => {
  const harness = eachHarness((onEvent) => startHarness({ meter: { onEvent } }))
  const events = harness.events

  it('reserve() admits what the quota has room for, concurrently, and bills only committed work', async () => {
    const h = harness()
    h.emu.createCustomer('worker-customer', 'free')
    const jobs = Array.from({ length: 20 }, (_, i) => worker(h.meter, { customer: 'worker-customer', fail: i === 0 }))
    const outcomes = await Promise.all(jobs)
    assert.equal(outcomes.filter((o) => o === 'quota_exceeded').length, 15)
    assert.equal(outcomes.filter((o) => o === 'failed').length, 1)
    // The failed job gave its unit back: one more fits.
    assert.equal(await worker(h.meter, { customer: 'worker-customer' }), 'done')
    assert.equal(await worker(h.meter, { customer: 'worker-customer' }), 'quota_exceeded')
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'worker-customer', meteringId: 'render' }), 5)
    assert.ok(events.some((e) => e.type === 'decision' && e.allowed === false && e.lever === 'renders-per-minute'))
  })

  it('commit and release are idempotent: a retried step cannot count twice', async () => {
    const h = harness()
    const reservation = await h.meter.reserve('pro-customer', 'api-call', { cost: 2, bucket: 'batch' })
    assert.ok(reservation.allowed)
    await reservation.commit(3)
    await reservation.commit(3)
    await reservation.release()
    const released = await h.meter.reserve('pro-customer', 'api-call')
    assert.ok(released.allowed)
    await released.release()
    await released.commit()
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call', bucket: 'batch' }), 3)
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 3)
  })

  it('a commit() after close() finished is refused with METER_CLOSED, never silently lost', async () => {
    const h = harness()
    const meter = createMeter({ ...h.options, reporting: { closeTimeoutMs: 200 } })
    const during = await meter.reserve('pro-customer', 'api-call', { cost: 2 })
    const late = await meter.reserve('pro-customer', 'api-call', { cost: 4 })
    assert.ok(during.allowed && late.allowed)
    const closing = meter.close()
    await during.commit() // while close() waits for open reservations: delivered
    await new Promise((resolve) => setTimeout(resolve, 400)) // close() gave up waiting for `late`
    await closing
    await assert.rejects(late.commit(), { code: 'METER_CLOSED' })
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 2)
  })

  it('isEntitled() answers as requireFeature() decides', async () => {
    const h = harness()
    assert.equal(await h.meter.isEntitled('pro-customer', 'csv-export'), true)
    assert.equal(await h.meter.isEntitled('free-customer', 'csv-export'), false)
    assert.equal(await h.meter.isEntitled('nobody@example.com', 'csv-export'), false)
    assert.equal(await h.meter.isEntitled('free-customer', 'max-projects'), true)
  })

  it('report() enqueues usage without enforcement; it reaches Planship aggregated, with the rest', async () => {
    const h = harness()
    h.emu.createCustomer('webhook-customer', 'free')
    for (let i = 0; i < 8; i++) h.meter.report('webhook-customer', 'render', 1)
    h.meter.report('webhook-customer', 'render', 4, { bucket: 'imports' })
    h.meter.report('webhook-customer', 'render', 0)
    h.emu.resetRequestCounts()
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'webhook-customer', meteringId: 'render' }), 12)
    assert.equal(h.emu.recordedUsage({ customerId: 'webhook-customer', meteringId: 'render', bucket: 'imports' }), 4)
    assert.equal(h.emu.requestCounts()['reportUsage'], 2, 'one POST per key')
  })

  it('refuses input that cannot be reported: TypeError, nothing admitted or billed', async () => {
    const h = harness()
    const bad: Array<[string, () => unknown]> = [
      ['report customer ..', () => h.meter.report('..', 'render', 1)],
      ['report empty metering id', () => h.meter.report('pro-customer', '', 1)],
      ['report fractional usage', () => h.meter.report('pro-customer', 'render', 1.5)],
      ['report negative usage', () => h.meter.report('pro-customer', 'render', -1)],
      ['report empty bucket', () => h.meter.report('pro-customer', 'render', 1, { bucket: '' })],
      ['report lone surrogate', () => h.meter.report('\uD800', 'render', 1)],
    ]
    for (const [name, call] of bad) assert.throws(call, TypeError, name)
    await assert.rejects(h.meter.reserve('bad\u0000id', 'render'), TypeError)
    await assert.rejects(h.meter.reserve('pro-customer', 'render', { cost: -1 }), TypeError)
    await assert.rejects(h.meter.isEntitled('.', 'csv-export'), TypeError)
    const ok = await h.meter.reserve('pro-customer', 'render')
    assert.ok(ok.allowed)
    await assert.rejects(ok.commit(Number.NaN), TypeError)
    await ok.release()
    await h.meter.flush()
    assert.equal(h.meter.planshipCalls().reportUsage, 0)
  })

  it('close() waits for open reservations, then refuses: reserve() is denied 503, report() throws METER_CLOSED', async () => {
    const h = harness()
    const meter = createMeter(h.options)
    const reservation = await meter.reserve('pro-customer', 'api-call', { cost: 4 })
    assert.ok(reservation.allowed)
    const closing = meter.close()
    setTimeout(() => void reservation.commit(), 50)
    assert.deepEqual((await closing).undelivered, [])
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 4)
    const after = await meter.reserve('pro-customer', 'api-call')
    assert.equal(after.allowed ? 'allowed' : after.denial.code, 'planship_unavailable')
    assert.throws(
      () => meter.report('pro-customer', 'api-call', 1),
      (error: unknown) => {
        return error instanceof PlanshipMeterError && error.code === 'METER_CLOSED'
      },
    )
  })

  it('is the same API on the Express meter', async () => {
    const h = harness()
    const { onDenied: _koaOnly, ...shared } = h.options
    const meter = createExpressMeter({ ...shared, identify: (req) => req.get('x-customer-id') })
    const reservation = await meter.reserve('pro-customer', 'api-call')
    assert.ok(reservation.allowed)
    await reservation.commit()
    meter.report('pro-customer', 'api-call', 2)
    assert.equal(await meter.isEntitled('pro-customer', 'csv-export'), true)
    await meter.close()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 3)
  })
})
