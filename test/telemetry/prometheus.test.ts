import assert from 'node:assert/strict'
import request from 'supertest'
import { createDemoApp } from '../../examples/koa-api/app.js'
import { prometheusMetrics } from '../../examples/koa-api/metrics.js'
import { startEmulator } from '../../src/emulator/index.js'

describe('examples/koa-api /metrics', () => {
  it('serves the meter’s metrics in the Prometheus text format after some traffic', async () => {
    const emu = await startEmulator()
    const metrics = prometheusMetrics()
    const { app, meter } = createDemoApp({
      productSlug: emu.productSlug,
      planship: { baseUrl: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret },
      logger: {},
    })
    app.use(metrics.middleware)
    const api = request(app.callback())
    try {
      for (let i = 0; i < 6; i++) await api.post('/v1/renders').set('x-customer-id', 'free-customer')
      await api.get('/v1/search?q=koa').set('x-customer-id', 'pro-customer').expect(200)
      await api.get('/v1/export.csv').set('x-customer-id', 'free-customer').expect(403)
      await meter.flush()

      const scrape = await api
        .get('/metrics')
        .expect(200)
        .expect('content-type', /text\/plain/)
      const value = (series: RegExp) => {
        const line = scrape.text.split('\n').find((candidate) => series.test(candidate))
        assert.ok(line, `no series ${series} in:\n${scrape.text}`)
        return Number(line.slice(line.lastIndexOf(' ') + 1))
      }
      assert.equal(value(/^planship_meter_decisions_total\{.*decision_kind="consume".*allowed="true"/), 6)
      assert.equal(
        value(/^planship_meter_denials_total\{.*code="quota_exceeded",planship_meter_lever="renders-per-minute"/),
        1,
      )
      assert.equal(value(/^planship_meter_denials_total\{.*code="feature_not_entitled".*lever="csv-export"/), 1)
      assert.equal(value(/^planship_meter_units_reported_total\{/), 6)
      assert.equal(value(/^planship_meter_reports_total\{planship_meter_report_outcome="delivered"/), 2)
      assert.equal(value(/^planship_meter_pending_units\{/), 0)
      assert.equal(value(/^planship_meter_circuit_breaker_state\{/), 0)
      assert.equal(value(/^http_client_request_duration_count\{.*endpoint="entitlements".*status_code="200"/), 2)
      assert.equal(value(/^http_client_request_duration_bucket\{.*endpoint="report_usage".*le="\+Inf"/), 2)
      assert.doesNotMatch(scrape.text, /free-customer|pro-customer|demo-client-secret/)
      // Other paths are the app's; only GET answers with metrics.
      await api.post('/metrics').expect(404)
    } finally {
      await meter.close()
      await metrics.shutdown()
      await emu.close()
    }
  })
})
