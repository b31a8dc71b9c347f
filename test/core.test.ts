import assert from 'node:assert/strict'
import { createMeter as createCoreMeter, type MeterCoreOptions } from '../src/core/index.js'
import { type Emulator, startEmulator } from '../src/emulator/index.js'
import { createMeter as createExpressMeter } from '../src/express/index.js'
import { createMeter } from '../src/index.js'

/** Meter options pointing at `emu`, without `identify`. */
function workerOptions(emu: Emulator): MeterCoreOptions {
  return {
    productSlug: emu.productSlug,
    planship: { baseUrl: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret },
    reporting: { flushIntervalMs: 3_600_000, closeTimeoutMs: 2_000 },
  }
}

describe('a meter without identify', () => {
  let emu: Emulator
  beforeEach(async () => {
    emu = await startEmulator()
  })
  afterEach(() => emu.close())

  it('planship-meter/core: reserves, reports, answers isEntitled and delivers, with no framework', async () => {
    const meter = createCoreMeter(workerOptions(emu))
    await meter.check()
    const reservation = await meter.reserve('free-customer', 'render', { cost: 2 })
    assert.ok(reservation.allowed)
    await reservation.commit()
    meter.report('free-customer', 'api-call', 3)
    assert.equal(await meter.isEntitled('pro-customer', 'csv-export'), true)
    assert.equal(await meter.isEntitled('free-customer', 'csv-export'), false)
    await meter.close()
    assert.equal(emu.recordedUsage({ customerId: 'free-customer', meteringId: 'render' }), 2)
    assert.equal(emu.recordedUsage({ customerId: 'free-customer', meteringId: 'api-call' }), 3)
  })

  const meters = [
    ['Koa', (emu: Emulator) => createMeter(workerOptions(emu))],
    ['Express', (emu: Emulator) => createExpressMeter(workerOptions(emu))],
  ] as const
  for (const [framework, create] of meters) {
    it(`${framework}: the neutral API works, and mounting middleware() or a route throws a TypeError naming identify`, async () => {
      const meter = create(emu)
      for (const mount of [
        () => meter.middleware(),
        () => meter.consume('api-call'),
        () => meter.requireFeature('csv-export'),
      ]) {
        assert.throws(mount, (error: unknown) => {
          assert.ok(error instanceof TypeError)
          assert.match(error.message, /(middleware|consume|requireFeature)\(\) needs the `identify` option/)
          return true
        })
      }
      const reservation = await meter.reserve('pro-customer', 'api-call')
      assert.ok(reservation.allowed)
      await reservation.commit()
      await meter.close()
      assert.equal(emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 1)
    })
  }
})
