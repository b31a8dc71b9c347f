import assert from 'node:assert/strict'
import Koa from 'koa'
import request from 'supertest'
import { type ConsumeOptions, createMeter, type Meter, type PlanshipState } from '../../src/index.js'
import { type Harness, startHarness } from '../helpers/harness.js'

/** A route consuming render with `options`; its handler counts runs. */
function route(meter: Meter, options: ConsumeOptions) {
  const runs = { count: 0 }
  const koa = new Koa<PlanshipState>()
  koa.silent = true
  koa.use(meter.consume('render', options))
  koa.use((ctx) => {
    runs.count++
    ctx.body = [1, 2, 3]
  })
  return { call: (customer: string) => request(koa.callback()).post('/').set('x-customer-id', customer), runs }
}

describe('bad input answers one request and corrupts nothing', () => {
  let h: Harness

  beforeEach(async () => {
    h = await startHarness()
  })
  afterEach(() => h.close())

  const badCosts: Array<[string, () => number]> = [
    [
      'throwing',
      () => {
        throw new Error('cost lookup failed')
      },
    ],
    ['returning -1', () => -1],
    ['returning NaN', () => Number.NaN],
    ['returning 0.5', () => 0.5],
    ['returning an unsafe integer', () => Number.MAX_SAFE_INTEGER + 2],
    ['returning a string', () => '3' as unknown as number],
  ]

  for (const [name, cost] of badCosts) {
    it(`a cost function ${name}: 500 for that request, the quota untouched`, async () => {
      h.emu.createCustomer('victim', 'free')
      const bad = route(h.meter, { cost })
      await bad.call('victim').expect(500)
      assert.equal(bad.runs.count, 0)
      const good = route(h.meter, {})
      for (let i = 0; i < 5; i++) await good.call('victim').expect(200) // all 5 renders still there
      await good.call('victim').expect(429)
      await h.meter.flush()
      assert.equal(h.emu.recordedUsage({ customerId: 'victim', meteringId: 'render' }), 5)
    })
  }

  it('a usage function that throws or returns garbage reports the admitted cost and logs an error', async () => {
    const throwing = route(h.meter, {
      cost: 2,
      usage: () => {
        throw new Error('count failed')
      },
    })
    const negative = route(h.meter, { cost: 1, usage: () => -7 })
    await throwing.call('pro-customer').expect(200)
    await negative.call('pro-customer').expect(200)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'render' }), 3)
    assert.equal(h.logger.lines.filter((line) => line.startsWith('error the usage function')).length, 2)
  })

  it('a bucket function returning a non-string: 500, nothing reserved', async () => {
    const bad = route(h.meter, { bucket: () => 42 as unknown as string })
    await bad.call('pro-customer').expect(500)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer' }), 0)
  })

  it('customer ids with ../ and %2F reach Planship as themselves, URL-encoded', async () => {
    const ids = ['../../admin', 'a%2Fb', '..%2F..%2Fetc']
    for (const id of ids) h.emu.createCustomer(id, 'pro')
    const ok = route(h.meter, {})
    for (const id of ids) await ok.call(id).expect(200)
    await h.meter.flush()
    for (const id of ids) assert.equal(h.emu.recordedUsage({ customerId: id, meteringId: 'render' }), 1, id)
  })

  const garbage: Array<[string, () => Response]> = [
    ['non-JSON', () => new Response('<html>502 Bad Gateway</html>', { status: 200 })],
    ['the wrong shape', () => Response.json(['api-calls', 100])],
    ['a truncated body', () => new Response('{"api-calls": 10', { status: 200 })],
    ['a 500 with garbage', () => new Response('oops', { status: 500 })],
  ]

  for (const [name, answer] of garbage) {
    it(`Planship answering ${name}: failMode decides, nothing is cached or corrupted`, async () => {
      let broken = true
      const planshipFetch: typeof fetch = (input, init) =>
        broken && String(input).includes('/entitlements') ? Promise.resolve(answer()) : fetch(input, init)
      for (const failMode of ['open', 'closed'] as const) {
        const meter = createMeter({ ...h.options, fetch: planshipFetch, failMode })
        const { call } = route(meter, {})
        await call('pro-customer').expect(failMode === 'open' ? 200 : 503)
        await meter.close()
      }
      broken = false
      const meter = createMeter({ ...h.options, fetch: planshipFetch })
      await route(meter, {}).call('pro-customer').expect(200)
      await meter.close()
      assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'render' }), 2)
    })
  }
})
