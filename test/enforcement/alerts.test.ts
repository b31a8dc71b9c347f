import assert from 'node:assert/strict'
import { createMeter, type MeterEvent } from '../../src/index.js'
import { startEmulator } from '../../src/emulator/index.js'
import { manualClock } from '../helpers/harness.js'

const DAY = 86_400_000

describe('threshold alerts', () => {
  it('fire once per customer × lever × threshold × period, and again after the period resets', async function () {
    this.timeout(10_000)
    const clock = manualClock()
    const emu = await startEmulator()
    const events: MeterEvent[] = []
    const meter = createMeter({
      productSlug: emu.productSlug,
      planship: { baseUrl: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret },
      clock,
      alerts: { thresholds: [1, 0.5] },
      onEvent: (event) => events.push(event),
      reporting: { flushIntervalMs: 3_600_000 },
    })
    const thresholds = () =>
      events.flatMap((event) => (event.type === 'threshold' ? [[event.lever, event.threshold, event.used]] : []))
    const use = async (units: number) => {
      for (let i = 0; i < units; i++) {
        const d = await meter.reserve('free-customer', 'api-call')
        if (d.allowed) await d.commit()
      }
    }
    /** Alerts are confirmed off the request path: waits for `count` of them (5 s at most). */
    const alerted = async (count: number) => {
      for (let i = 0; i < 200 && thresholds().length < count; i++)
        await new Promise((resolve) => setTimeout(resolve, 25))
      return thresholds()
    }
    try {
      await use(49)
      assert.deepEqual(thresholds(), [])
      await use(1)
      assert.deepEqual(await alerted(1), [['api-calls', 0.5, 50]])
      await use(50)
      await use(5) // denied: nothing more to cross
      assert.deepEqual(await alerted(2), [
        ['api-calls', 0.5, 50],
        ['api-calls', 1, 100],
      ])
      await meter.flush()
      assert.deepEqual(thresholds().length, 2, 'a flush changes nothing: still the same period')

      // The subscription renews: usage starts again from 0, and the alerts fire again.
      emu.advanceClock(32 * DAY)
      clock.advance(32 * DAY)
      await use(50)
      assert.deepEqual(await alerted(3), [
        ['api-calls', 0.5, 50],
        ['api-calls', 1, 100],
        ['api-calls', 0.5, 50],
      ])
    } finally {
      await meter.close()
      await emu.close()
    }
  })

  it('are validated: thresholds in (0, 1], a TypeError naming the option', () => {
    const base = { productSlug: 'p', planship: { clientId: 'i', clientSecret: 's' } }
    for (const thresholds of [[], [0], [1.2], [Number.NaN], ['0.8']] as unknown as number[][]) {
      assert.throws(
        () => createMeter({ ...base, alerts: { thresholds } }),
        (error: unknown) => {
          return error instanceof TypeError && error.message.includes('alerts.thresholds')
        },
      )
    }
    assert.throws(() => createMeter({ ...base, alerts: 3 as never }), /alerts/)
  })
})
