import assert from 'node:assert/strict'
import { startHarness } from '../helpers/harness.js'
import { startSdk } from './sdk.js'

describe('OpenTelemetry: threshold alerts', () => {
  it('counts alerts by lever and threshold, never by customer', async () => {
    const sdk = startSdk() // before createMeter(), as an app must
    const h = await startHarness({ meter: { alerts: { thresholds: [0.8, 1] } } })
    try {
      h.emu.createCustomer('alerted@example.com', 'free')
      for (let i = 0; i < 6; i++) await h.meter.reserve('alerted@example.com', 'render') // 5 a minute
      const lever = { 'planship_meter.lever': 'renders-per-minute' }
      // Confirmed off the request path: wait for the second one (5 s at most).
      const full = { ...lever, 'planship_meter.alert.threshold': 1 }
      for (let i = 0; i < 200 && (await sdk.total('planship_meter.alerts', full)) < 1; i++)
        await new Promise((resolve) => setTimeout(resolve, 25))
      assert.equal(await sdk.total('planship_meter.alerts', { ...lever, 'planship_meter.alert.threshold': 0.8 }), 1)
      assert.equal(await sdk.total('planship_meter.alerts', { ...lever, 'planship_meter.alert.threshold': 1 }), 1)
      const points = await sdk.points('planship_meter.alerts')
      assert.ok(!JSON.stringify(points.map((point) => point.attributes)).includes('alerted'))
    } finally {
      await h.close()
      await sdk.stop()
    }
  })
})
