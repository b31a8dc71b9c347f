import assert from 'node:assert/strict'
import request from 'supertest'
import { createMeter } from '../../src/index.js'
import { appWith, type Harness, startHarness, until } from '../helpers/harness.js'
import { listen } from '../helpers/streams.js'

describe('close() and logs under an outage, and with more pending keys than it has time for', function () {
  this.timeout(20_000)
  let h: Harness
  beforeEach(async () => {
    h = await startHarness()
  })
  afterEach(() => h.close())

  it('retries during close() wait out Retry-After as background flushes do, and log one line per pass', async () => {
    const meter = createMeter({ ...h.options, reporting: { flushIntervalMs: 3_600_000, closeTimeoutMs: 2_500 } })
    const koa = appWith(meter.consume('api-call'))
    // Three keys, so that a line per key per retry would show.
    for (const customer of ['pro-customer', 'free-customer', 'pro-customer']) {
      await request(koa.callback()).post('/').set('x-customer-id', customer).expect(200)
    }
    const render = appWith(meter.consume('render'))
    await request(render.callback()).post('/').set('x-customer-id', 'pro-customer').expect(200)
    h.emu.setFaults({ rules: [{ route: 'reportUsage', kind: 'rate-limit', retryAfterS: 1 }] })
    const result = await meter.close()
    const attempts = h.emu.requestCounts()['reportUsage'] ?? 0
    // Planship asked for 1 s between attempts: within 2.5 s that is 3 passes of 3 keys, not one every 250 ms.
    assert.ok(attempts >= 3 && attempts <= 9, `${attempts} attempts`)
    const passLines = h.logger.lines.filter((line) => line.startsWith('warn reporting usage: 3 of 3 reports failed'))
    assert.equal(passLines.length, attempts / 3, h.logger.lines.join('\n'))
    assert.equal(result.undelivered.length, 3)
    assert.equal(
      result.undelivered.reduce((sum, report) => sum + report.usage, 0),
      4,
    )
  })

  it('stops starting reports at closeTimeoutMs and returns the rest as undelivered, losing nothing', async () => {
    const meter = createMeter({
      ...h.options,
      reporting: { flushIntervalMs: 3_600_000, maxConcurrency: 1, closeTimeoutMs: 1_000 },
    })
    const koa = appWith(meter.consume('api-call'))
    const customers = Array.from({ length: 40 }, (_, i) => `one-off-${i}`)
    for (const customer of customers) {
      h.emu.createCustomer(customer, 'pro')
      await request(koa.callback()).post('/').set('x-customer-id', customer).expect(200)
    }
    // One POST at a time, 200 ms each: all forty would hold shutdown for 8 s.
    h.emu.setLatency(200)
    const result = await meter.close()
    const recorded = h.emu.recordedUsage({ meteringId: 'api-call' })
    assert.ok(result.undelivered.length > 0, 'some keys were left for the app to persist')
    assert.ok(recorded > 0, 'the first keys went out')
    assert.equal(recorded + result.undelivered.length, customers.length, 'every unit is either recorded or returned')
    assert.ok(h.logger.lines.some((line) => line.startsWith(`error close(): ${result.undelivered.length} usage units`)))
  })

  it('also cuts short a background pass already sending when close() begins', async () => {
    const meter = createMeter({
      ...h.options,
      reporting: { flushIntervalMs: 300, maxConcurrency: 1, closeTimeoutMs: 1_000 },
    })
    // Reports take 200 ms each from the start, one at a time: however slow a loaded machine
    // makes the requests, passes running meanwhile send 5 keys a second, far from all forty.
    h.emu.setFaults({ rules: [{ route: 'reportUsage', kind: 'latency', latencyMs: 200 }] })
    const server = await listen(appWith(meter.consume('api-call')))
    const customers = Array.from({ length: 40 }, (_, i) => `idle-${i}`)
    for (const customer of customers) h.emu.createCustomer(customer, 'pro')
    await Promise.all(customers.map((customer) => request(server).post('/').set('x-customer-id', customer).expect(200)))
    server.close()
    // Let a background pass take the idle keys and start sending them.
    await until(() => (h.emu.requestCounts()['reportUsage'] ?? 0) > 0)
    assert.ok((h.emu.requestCounts()['reportUsage'] ?? 0) > 0, 'a background pass is sending')
    const result = await meter.close()
    const recorded = h.emu.recordedUsage({ meteringId: 'api-call' })
    assert.ok(result.undelivered.length > 0, 'the running pass stopped at the deadline')
    assert.equal(recorded + result.undelivered.length, customers.length, 'every unit is either recorded or returned')
  })
})
