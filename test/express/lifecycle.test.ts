import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import request from 'supertest'
import { startEmulator } from '../../src/emulator/index.js'
import { createMeter, type DecisionRecord, type ExpressMeter } from '../../src/express/index.js'
import { expressDemoApp, jsonErrors, startExpressHarness } from '../helpers/express.js'
import { assertRendersUntouched, eachHarness } from '../helpers/harness.js'

/** One route consuming api-call that echoes the decision taken. */
function app(meter: ExpressMeter) {
  const api = express()
  api.get('/', meter.consume('api-call'), (_req, res) => {
    res.json({ decision: res.locals.planship.decisions[0] })
  })
  api.use(jsonErrors)
  return api
}

describe('Express: requireFeature(), identify and onDenied', () => {
  const harness = eachHarness(() => startExpressHarness())

  it('hands onDenied (req, res, denial) with the status and headers already set', async () => {
    const h = harness()
    const seen: string[] = []
    const meter = createMeter({
      ...h.options,
      onDenied: (req, res, denial) => {
        seen.push(`${req.path} ${denial.code}`)
        res.send(`denied: ${denial.code}`)
      },
    })
    const { app: demo } = expressDemoApp(meter)
    await request(demo).get('/export').expect(401, 'denied: customer_unidentified')
    await request(demo).get('/export').set('x-customer-id', 'free-customer').expect(403)
    assert.deepEqual(seen, ['/export customer_unidentified', '/export feature_not_entitled'])
    await meter.close()
  })

  it('passes a throwing identify to the error handler (500), and other requests are unaffected', async () => {
    const h = harness()
    const meter = createMeter({
      ...h.options,
      identify: async (req) => {
        if (req.get('x-customer-id') === 'explode') throw new Error('auth store down')
        return req.get('x-customer-id') || undefined
      },
    })
    await request(app(meter)).get('/').set('x-customer-id', 'explode').expect(500)
    await request(app(meter)).get('/').set('x-customer-id', 'pro-customer').expect(200)
    await meter.close()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 1)
  })
})

describe('Express: fail modes', () => {
  const harness = eachHarness(() => startExpressHarness())

  it("failMode 'open' admits with a cold cache and the emulator stopped, and still reports the usage later", async () => {
    const h = harness()
    const port = Number(new URL(h.emu.url).port)
    await h.emu.close()
    const res = await request(app(h.meter)).get('/').set('x-customer-id', 'pro-customer').expect(200)
    assert.equal((res.body.decision as DecisionRecord).source, 'fail-open')
    await assert.rejects(h.meter.flush(), { code: 'FLUSH_INCOMPLETE' })
    h.emu = await startEmulator({ port })
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 1)
  })

  it("failMode 'closed' (per route) answers 503 planship_unavailable with the emulator stopped", async () => {
    const h = harness()
    const api = express()
    api.get('/', h.meter.consume('api-call', { failMode: 'closed' }), (_req, res) => {
      res.send('ran')
    })
    await h.emu.close()
    const res = await request(api).get('/').set('x-customer-id', 'pro-customer').expect(503)
    assert.equal(res.body.error.code, 'planship_unavailable')
  })
})

/** A POST /renders on a real socket the test can cut, to an app listening on a free port. */
async function rawPost(api: express.Express, headers: Record<string, string>) {
  const server = api.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  const client = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/renders', headers })
  client.on('error', () => {})
  client.end()
  return { server, client }
}

describe('Express: close() and requests around it', () => {
  const harness = eachHarness(() => startExpressHarness())

  it('waits for responses still running to finish before the last flush', async () => {
    const h = harness()
    const meter = createMeter(h.options)
    let release: () => void = () => {}
    const api = express()
    const started = new Promise<void>((resolve) => {
      api.get('/', meter.consume('api-call', { cost: 3 }), (_req, res) => {
        resolve()
        release = () => res.send('slow')
      })
    })
    // A supertest request is sent once something awaits it.
    const answered = Promise.resolve(request(api).get('/').set('x-customer-id', 'pro-customer').expect(200))
    await started
    const closing = meter.close()
    setTimeout(() => release(), 100)
    const { undelivered } = await closing
    await answered
    assert.deepEqual(undelivered, [])
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 3)
    const after = await request(api).get('/').set('x-customer-id', 'pro-customer').expect(503)
    assert.equal(after.body.error.code, 'planship_unavailable')
  })

  it("releases, never bills, under onAbort: 'release', a request whose client went away before the response was complete", async () => {
    const h = harness()
    h.emu.createCustomer('impatient', 'free')
    const api = express()
    let closed: Promise<unknown> = Promise.resolve()
    let ended = false
    api.post('/renders', h.meter.consume('render', { onAbort: 'release' }), (req, res) => {
      if (req.get('x-hang') === undefined) return void res.json({})
      closed = once(res, 'close')
      res.write('partial ')
      // This response never completes before the client disconnects.
      void closed.then(() => (ended = true))
    })
    const { server, client } = await rawPost(api, { 'x-customer-id': 'impatient', 'x-hang': '1' })
    const [response] = (await once(client, 'response')) as [http.IncomingMessage]
    assert.equal(response.statusCode, 200)
    client.destroy() // the client gives up mid-response
    await closed
    assert.ok(ended)
    server.close()
    // All 5 renders are still there, and nothing was reported.
    await assertRendersUntouched(h, 'impatient', () => request(api).post('/renders').set('x-customer-id', 'impatient'))
  })

  it('releases a request whose client went away while the decision waited for Planship', async () => {
    const h = harness()
    h.emu.createCustomer('gone-early', 'free')
    h.emu.setLatency(300) // a cold decision waits for Planship
    const meter = createMeter({ ...h.options, reporting: { closeTimeoutMs: 3_000 } })
    const api = express()
    api.post('/renders', meter.consume('render', { cost: 5 }), (_req, res) => void res.json({}))
    const { server, client } = await rawPost(api, { 'x-customer-id': 'gone-early' })
    setTimeout(() => client.destroy(), 50) // gone before the decision is taken (token, then reads: ≥ 600 ms)
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    h.emu.setLatency(0)
    // The 5 renders of the free plan are all still there: the reservation was released.
    const again = await request(api).post('/renders').set('x-customer-id', 'gone-early')
    assert.equal(again.status, 200, JSON.stringify(again.body))
    const { undelivered } = await meter.close()
    assert.deepEqual(undelivered, [])
    assert.equal(h.emu.recordedUsage({ customerId: 'gone-early', meteringId: 'render' }), 5, 'only the second request')
    server.close()
  })
})
