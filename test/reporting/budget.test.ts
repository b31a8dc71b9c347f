import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import request from 'supertest'
import { createMeter, type MeterEvent } from '../../src/index.js'
import { appWith, type Harness, startHarness } from '../helpers/harness.js'

describe('the report budget (reporting.maxPostsPerSecond)', function () {
  this.timeout(15_000)
  let h: Harness
  beforeEach(async () => {
    h = await startHarness()
  })
  afterEach(() => h.close())

  async function pend(meter: ReturnType<typeof createMeter>, customers: string[]) {
    const koa = appWith(meter.consume('api-call'))
    for (const customer of customers) {
      await request(koa.callback()).post('/').set('x-customer-id', customer).expect(200)
    }
  }

  it('bounds background POSTs per pass however many keys wait, longest-waiting first, and delivers them all', async () => {
    const passes: number[] = []
    const meter = createMeter({
      ...h.options,
      reporting: { flushIntervalMs: 100, maxPostsPerSecond: 50 }, // 5 POSTs per 100 ms pass
      onEvent: (event: MeterEvent) => {
        if (event.type === 'flush') passes.push(event.result.reports)
      },
    })
    const customers = Array.from({ length: 30 }, (_, i) => `budget-${i}@example.com`)
    const ids = customers.map((customer) => h.emu.createCustomer(customer, 'pro').id)
    await pend(meter, customers)
    for (let i = 0; i < 100 && h.emu.recordedUsage() < 30; i++) await sleep(50)
    assert.equal(h.emu.recordedUsage(), 30, 'every key went out in the end')
    assert.ok(passes.length >= 6, `${passes.length} passes`)
    assert.ok(
      passes.every((reports) => reports <= 5),
      `POSTs per pass: ${passes.join(' ')}`,
    )
    // The first pass took the five keys that had waited longest.
    const order = h.emu.meteringRecords().map((record) => record.customer_id)
    assert.deepEqual(new Set(order.slice(0, 5)), new Set(ids.slice(0, 5)))
    await meter.close()
  })

  it('flush() and close() ignore the budget', async () => {
    const meter = createMeter({ ...h.options, reporting: { flushIntervalMs: 3_600_000, maxPostsPerSecond: 1 } })
    const customers = Array.from({ length: 12 }, (_, i) => `all-${i}@example.com`)
    for (const customer of customers) h.emu.createCustomer(customer, 'free')
    await pend(meter, customers)
    const result = await meter.flush()
    assert.equal(result.reports, 12)
    await pend(meter, customers.slice(0, 3))
    await meter.close()
    assert.equal(h.emu.recordedUsage(), 15)
  })

  it('rejects a budget that is not a positive integer', () => {
    assert.throws(
      () => createMeter({ ...h.options, reporting: { maxPostsPerSecond: 0 } }),
      /reporting\.maxPostsPerSecond/,
    )
  })
})
