import assert from 'node:assert/strict'
import request from 'supertest'
import { createMeter, type MeterEvent } from '../../src/index.js'
import { appWith, type Harness, manualClock, startHarness, until } from '../helpers/harness.js'
import { listen } from '../helpers/streams.js'

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

  it('bounds the POSTs of busy keys per pass, longest-waiting first; idle keys go out all the same', async () => {
    const passes: number[] = []
    // Busy or idle is read on the meter's clock: held still while the requests come, every key
    // stays busy however slow a loaded machine makes a round; moved past an interval, all are idle.
    // (On the real clock, a round slower than a pass made keys idle mid-round: 30 POSTs "while busy".)
    const clock = manualClock()
    const meter = createMeter({
      ...h.options,
      clock,
      reporting: { flushIntervalMs: 200, maxPostsPerSecond: 25 }, // 5 busy keys per 200 ms pass
      onEvent: (event: MeterEvent) => {
        if (event.type === 'flush') passes.push(event.result.reports)
      },
    })
    const customers = Array.from({ length: 30 }, (_, i) => `budget-${i}@example.com`)
    for (const customer of customers) h.emu.createCustomer(customer, 'pro')
    // One listening server for every round: a server per request (supertest on a callback) made a
    // round slow enough on a loaded CI machine for passes to drain most keys within it.
    const server = await listen(appWith(meter.consume('api-call')))
    const round = () =>
      Promise.all(customers.map((customer) => request(server).post('/').set('x-customer-id', customer).expect(200)))
    try {
      // Warm-up: every customer's first (cold) request reads Planship, so the first round is slow
      // and its keys are idle by the next pass; flushed, and its passes not counted.
      await round()
      await meter.flush()
      passes.length = 0
      // Busy: every customer gets a request in each round of concurrent requests, for a bit over a
      // second and at least 3 passes, 10 s at most.
      let sent = 0
      const busyUntil = Date.now() + 1_200
      const giveUpAt = Date.now() + 10_000
      while ((Date.now() < busyUntil || passes.length < 3) && Date.now() < giveUpAt) {
        await round()
        sent += customers.length
      }
      const whileBusy = [...passes]
      assert.ok(whileBusy.length >= 3, `${whileBusy.length} passes while busy`)
      assert.ok(
        whileBusy.every((reports) => reports <= 5),
        `POSTs per pass while busy: ${whileBusy.join(' ')}`,
      )
      // Idle: everything sent, then one more round gives all 30 keys usage. Only the passes that
      // run during that one round (5 keys each) take any before the clock moves past an interval,
      // so the next pass finds well over 5 idle keys and sends them all, beyond the budget.
      await meter.flush()
      const recordedBefore = h.emu.recordedUsage()
      passes.length = 0
      const startedAt = performance.now()
      await round()
      const roundMs = performance.now() - startedAt
      const duringRound = [...passes]
      clock.advance(201)
      await until(() => h.emu.recordedUsage() >= recordedBefore + customers.length)
      assert.equal(h.emu.recordedUsage(), sent + 2 * customers.length, 'every unit went out in the end')
      assert.ok(
        passes.slice(duringRound.length).some((reports) => reports > 5),
        `POSTs per pass once idle: ${passes.slice(duringRound.length).join(' ')} ` +
          `(during the last round, ${Math.round(roundMs)} ms: ${duringRound.join(' ')})`,
      )
    } finally {
      server.close()
      await meter.close()
    }
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
