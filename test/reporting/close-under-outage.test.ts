import assert from 'node:assert/strict'
import request from 'supertest'
import { createMeter } from '../../src/index.js'
import { appWith, type Harness, startHarness } from '../helpers/harness.js'

describe('close() and logs under an outage', function () {
  this.timeout(15_000)
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
})
