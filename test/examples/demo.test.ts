import assert from 'node:assert/strict'
import request from 'supertest'
import { createDemoApp } from '../../examples/koa-api/app.js'
import { startEmulator } from '../../src/emulator/index.js'
import { startDemo } from './demo-process.js'

describe('examples/koa-api', () => {
  it('enforces and reports on the emulator: free route, api-call, per-minute renders, csv-export', async () => {
    const emu = await startEmulator()
    const { app, meter } = createDemoApp({
      productSlug: emu.productSlug,
      planship: { baseUrl: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret },
      logger: {},
    })
    const api = request(app.callback())
    await api.get('/v1/status').expect(200, { ok: true, customer: null })
    await api.get('/v1/search?q=koa').expect(401)
    await api.get('/v1/search?q=koa').set('x-customer-id', 'free-customer').expect(200)
    await api.get('/v1/export.csv').set('x-customer-id', 'free-customer').expect(403)
    await api.get('/v1/export.csv').set('x-customer-id', 'pro-customer').expect(200).expect('content-type', /csv/)
    const renders = []
    for (let i = 0; i < 6; i++)
      renders.push((await api.post('/v1/renders').set('x-customer-id', 'free-customer')).status)
    assert.deepEqual(renders, [200, 200, 200, 200, 200, 429])
    await meter.close()
    assert.equal(emu.recordedUsage({ customerId: 'free-customer', meteringId: 'render' }), 5)
    assert.equal(emu.recordedUsage({ customerId: 'free-customer', meteringId: 'api-call' }), 1)
    await emu.close()
  })

  it('`npm start` serves the demo on the embedded emulator and flushes usage on SIGINT', async function () {
    this.timeout(20_000)
    const demo = await startDemo()
    const { apiUrl, emulatorUrl } = demo
    const output = demo.output()
    assert.match(output, /curl -i .*free-customer/)
    // Every URL in a curl line is single-quoted: unquoted, zsh would glob the `?` of a query.
    for (const line of output.split('\n').filter((l) => l.includes('curl '))) {
      assert.doesNotMatch(line.replace(/'[^']*'/g, "''"), /https?:\/\//, line)
    }
    const consoleUrl = /Console: (\S+)/.exec(output)?.[1]
    assert.equal(consoleUrl, `${emulatorUrl}/`)
    const page = await fetch(consoleUrl)
    assert.equal(page.status, 200)
    assert.match(await page.text(), /<title>Planship emulator<\/title>/)
    assert.equal((await fetch(`${apiUrl}/v1/search?q=x`, { headers: { 'x-customer-id': 'pro-customer' } })).status, 200)
    const scrape = await (await fetch(`${apiUrl}/metrics`)).text()
    assert.match(scrape, /^planship_meter_units_admitted_total\{planship_meter_metering_id="api-call",.*\} 1$/m)

    assert.equal(await demo.stop(), 0, demo.output())
    assert.match(demo.output(), /flushing usage/)
  })
})
