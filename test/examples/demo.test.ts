import assert from 'node:assert/strict'
import { getRequestListener } from '@hono/node-server'
import request from 'supertest'
import { createDemoApp as createExpressDemo } from '../../examples/express-api/app.js'
import { createDemoApp as createFastifyDemo } from '../../examples/fastify-api/app.js'
import { createDemoApp as createHonoDemo } from '../../examples/hono-api/app.js'
import { createDemoApp as createKoaDemo } from '../../examples/koa-api/app.js'
import { exportIfEntitled, onImportWebhook, processRenderJob } from '../../examples/worker/worker.js'
import { createMeter } from '../../src/index.js'
import { startEmulator } from '../../src/emulator/index.js'
import { startDemo } from './demo-process.js'

/** The same demo on every framework: the app as supertest takes it, and its meter. */
const demos = {
  'koa-api': (planship: Parameters<typeof createKoaDemo>[0]) => {
    const { app, meter } = createKoaDemo(planship)
    return { handler: app.callback(), meter }
  },
  'express-api': (planship: Parameters<typeof createExpressDemo>[0]) => {
    const { app, meter } = createExpressDemo(planship)
    return { handler: app, meter }
  },
  'fastify-api': async (planship: Parameters<typeof createFastifyDemo>[0]) => {
    const { app, meter } = await createFastifyDemo(planship)
    await app.ready()
    return { handler: app.server, meter }
  },
  'hono-api': (planship: Parameters<typeof createHonoDemo>[0]) => {
    const { app, meter } = createHonoDemo(planship)
    // @hono/node-server's listener, as `serve()` runs it: a Node server over real sockets.
    return { handler: getRequestListener(app.fetch), meter }
  },
}

for (const [name, createDemo] of Object.entries(demos))
  describe(`examples/${name}`, () => {
    it('enforces and reports on the emulator: free route, api-call, per-minute renders, csv-export', async () => {
      const emu = await startEmulator()
      const { handler, meter } = await createDemo({
        productSlug: emu.productSlug,
        planship: { baseUrl: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret },
        logger: {},
      })
      const api = request(handler)
      await api.get('/v1/status').expect(200, { ok: true, customer: null })
      await api.get('/v1/search?q=koa').expect(401)
      await api.get('/v1/search?q=koa').set('x-customer-id', 'free-customer').expect(200)
      await api.get('/v1/export.csv').set('x-customer-id', 'free-customer').expect(403)
      await api.get('/v1/export.csv').set('x-customer-id', 'pro-customer').expect(200).expect('content-type', /csv/)
      const renders = []
      for (let i = 0; i < 6; i++)
        renders.push((await api.post('/v1/renders').set('x-customer-id', 'free-customer')).status)
      assert.deepEqual(renders, [200, 200, 200, 200, 200, 429])
      // statusRoute() is on the Koa and Express meters; the Hono and Fastify adapters do not have it yet.
      await checkUsage(api)
      await meter.close()
      assert.equal(emu.recordedUsage({ customerId: 'free-customer', meteringId: 'render' }), 5)
      assert.equal(emu.recordedUsage({ customerId: 'free-customer', meteringId: 'api-call' }), 1)
      await emu.close()
    })

    it('its server serves the demo on the embedded emulator and flushes usage on SIGINT', async function () {
      this.timeout(20_000)
      const demo = await startDemo(`examples/${name}/server.ts`)
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
      const search = await fetch(`${apiUrl}/v1/search?q=x`, { headers: { 'x-customer-id': 'pro-customer' } })
      assert.equal(search.status, 200)
      if (name === 'koa-api') {
        const scrape = await (await fetch(`${apiUrl}/metrics`)).text()
        assert.match(scrape, /^planship_meter_units_admitted_total\{planship_meter_metering_id="api-call",.*\} 1$/m)
      }
      assert.equal(await demo.stop(), 0, demo.output())
      assert.match(demo.output(), /flushing usage/)
    })
  })

describe('examples/worker', () => {
  it('renders what the plan has room for, bills what was done, reports webhooks, gates features', async () => {
    const emu = await startEmulator()
    const meter = createMeter({
      productSlug: emu.productSlug,
      planship: { baseUrl: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret },
      identify: () => undefined,
      logger: {},
    })
    const job = { customerId: 'free-customer', project: 'demo', frames: 2 }
    const renderedOne = async () => 1
    const broken = async (): Promise<number> => Promise.reject(new Error('renderer down'))
    assert.equal(await processRenderJob(meter, job, broken), 'failed')
    assert.equal(await processRenderJob(meter, job, renderedOne), 'done') // billed 1 of the 2 reserved
    assert.equal(await processRenderJob(meter, { ...job, frames: 4 }, renderedOne), 'done')
    assert.equal(await processRenderJob(meter, { ...job, frames: 4 }, renderedOne), 'quota_exceeded')
    onImportWebhook(meter, { customerId: 'pro-customer', rows: 250 })
    assert.equal(await exportIfEntitled(meter, 'free-customer'), false)
    assert.equal(await exportIfEntitled(meter, 'pro-customer'), true)
    await meter.close()
    assert.equal(emu.recordedUsage({ customerId: 'free-customer', meteringId: 'render', bucket: 'demo' }), 2)
    assert.equal(emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call', bucket: 'imports' }), 250)
    await emu.close()
  })
})

/** The demo's GET /v1/usage: the identified customer's status, 401 without one. */
async function checkUsage(api: ReturnType<typeof request>): Promise<void> {
  const usage = await api.get('/v1/usage').set('x-customer-id', 'free-customer').expect(200)
  assert.deepEqual(usage.body.levers['api-calls'], {
    ...usage.body.levers['api-calls'],
    kind: 'metered',
    limit: 100,
    used: 1,
    remaining: 99,
  })
  assert.equal(usage.body.levers['renders-per-minute'].remaining, 0)
  await api.get('/v1/usage').expect(401)
}
