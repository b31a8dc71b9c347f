import assert from 'node:assert/strict'
import request from 'supertest'
import { CircuitBreaker } from '../../src/enforcement/backoff.js'
import { createMeter, PlanshipMeterError } from '../../src/index.js'
import { PlanshipClient } from '../../src/planship/client.js'
import { appWith, type Harness, manualClock, startHarness } from '../helpers/harness.js'

/** Ids that must never become a path other than `/customers/{one segment}/…`, nor be billed. */
const hostileIds = ['.', '..', '\uD800', 'lone\uDC00low', 'a\uD83D']

describe('customer ids never change the upstream path', () => {
  let h: Harness
  afterEach(() => h.close())

  function app(failMode: 'open' | 'closed') {
    // A lone surrogate cannot travel in a header: the header names the id by its index.
    const meter = createMeter({ ...h.options, failMode, identify: (ctx) => hostileIds[Number(ctx.get('x-id'))] })
    const koa = appWith(meter.middleware(), meter.consume('api-call'))
    return {
      meter,
      call: (id: string) =>
        request(koa.callback())
          .post('/')
          .set('x-id', String(hostileIds.indexOf(id))),
    }
  }

  for (const failMode of ['open', 'closed'] as const) {
    it(`answers 401 before reserving anything, with Planship up and down (failMode ${failMode})`, async () => {
      h = await startHarness()
      const { meter, call } = app(failMode)
      for (const id of hostileIds) {
        const res = await call(id).expect(401)
        assert.equal(res.body.error.code, 'customer_unidentified', JSON.stringify(id))
      }
      assert.deepEqual(h.emu.requestCounts(), {}, 'nothing reached Planship')
      h.emu.setDown(true)
      for (const id of hostileIds) await call(id).expect(401)
      h.emu.setDown(false)
      await meter.flush()
      assert.equal(h.emu.meteringRecords().length, 0, 'nothing was billed')
      assert.equal(meter.deliveryStats().rejectedUnits, 0, 'nothing was "rejected by Planship"')
      assert.ok(h.logger.lines.some((line) => line.includes('is a dot segment')))
      assert.ok(h.logger.lines.some((line) => line.includes('lone UTF-16 surrogate')))
      await meter.close()
    })
  }

  it('the client refuses such an id before sending, with INVALID_CUSTOMER_ID', async () => {
    h = await startHarness()
    const client = new PlanshipClient({
      ...h.options.planship,
      baseUrl: h.emu.url,
      productSlug: h.emu.productSlug,
      clientAuth: 'basic-raw',
      timeoutMs: 2_000,
      maxResponseBytes: 1_048_576,
      fetch: undefined,
      maxSockets: 2,
      clock: Date,
    })
    for (const id of hostileIds) {
      for (const call of [
        () => client.getEntitlements(id),
        () => client.getMeteringIdUsage(id, 'api-call'),
        () => client.reportUsage(id, 'api-call', 1),
        () => client.getCustomer(id),
      ]) {
        const error = await call().catch((e: unknown) => e)
        assert.ok(error instanceof PlanshipMeterError && error.code === 'INVALID_CUSTOMER_ID', String(error))
      }
    }
    assert.equal(h.emu.requestCounts()['entitlements'] ?? 0, 0)
    assert.equal(h.emu.meteringRecords().length, 0)
    client.close()
  })

  it('an id refused before sending is not an answer from Planship for the circuit breaker', () => {
    const clock = manualClock()
    const breaker = new CircuitBreaker(clock)
    breaker.failure(new PlanshipMeterError('PLANSHIP_HTTP_ERROR', 'down', { status: 503 }))
    clock.advance(60_000)
    assert.equal(breaker.begin(), undefined, 'a probe may go out')
    breaker.failure(new PlanshipMeterError('INVALID_CUSTOMER_ID', 'refused before sending'))
    assert.equal(breaker.begin(), undefined, 'another probe may go out')
    assert.notEqual(breaker.begin(), undefined, 'but the breaker is still open: one probe at a time')
  })
})
