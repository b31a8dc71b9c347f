import assert from 'node:assert/strict'
import express, { type ErrorRequestHandler } from 'express'
import express4 from 'express4'
import Koa from 'koa'
import request from 'supertest'
import { type ExpressHarness, startExpressHarness } from '../helpers/express.js'
import { type Harness, startHarness } from '../helpers/harness.js'

/** A Koa meter on Express (or the reverse) says so on the first request, naming the import to use. */
describe('a meter mounted on the wrong framework', () => {
  let koaMeter: Harness
  let expressMeter: ExpressHarness
  before(async () => {
    koaMeter = await startHarness()
    expressMeter = await startExpressHarness()
  })
  after(async () => {
    await koaMeter.close()
    await expressMeter.close()
  })

  const KOA_ON_EXPRESS =
    "this planship-meter middleware is for Koa (import { createMeter } from 'planship-meter'), but it is mounted on Express: on Express, use import { createMeter } from 'planship-meter/express'"

  /** What Express's error handling receives, answered as the body of the 500. */
  const errorMessage: ErrorRequestHandler = (error: unknown, _req, res, _next) => {
    res.status(500).json({ error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) })
  }

  for (const [name, framework] of [
    ['Express 5', express],
    ['Express 4', express4 as unknown as typeof express],
  ] as const) {
    it(`the Koa meter's middleware() and consume() on ${name} throw, naming planship-meter/express`, async () => {
      const { meter } = koaMeter
      for (const layer of [meter.middleware(), meter.consume('api-call')]) {
        const app = framework()
        app.use(layer as unknown as express.RequestHandler)
        app.use((_req, res) => res.json({ ok: true }))
        app.use(errorMessage)
        const res = await request(app).get('/').set('x-customer-id', 'pro-customer').expect(500)
        assert.equal(res.body.error, `TypeError: ${KOA_ON_EXPRESS}`)
      }
    })
  }

  it("the Koa meter's requireFeature() on Express 5 rejects with the same message", async () => {
    const app = express()
    app.use(koaMeter.meter.requireFeature('csv-export') as unknown as express.RequestHandler)
    app.use(errorMessage)
    const res = await request(app).get('/').set('x-customer-id', 'pro-customer').expect(500)
    assert.equal(res.body.error, `TypeError: ${KOA_ON_EXPRESS}`)
  })

  it("the Express meter's middleware on Koa throws, naming planship-meter", async () => {
    const { meter } = expressMeter
    for (const layer of [meter.middleware(), meter.consume('api-call'), meter.requireFeature('csv-export')]) {
      const app = new Koa()
      app.silent = true
      const errors: unknown[] = []
      app.on('error', (error) => errors.push(error))
      app.use(layer as unknown as Koa.Middleware)
      app.use((ctx) => {
        ctx.body = 'ok'
      })
      await request(app.callback()).get('/').set('x-customer-id', 'pro-customer').expect(500)
      assert.equal(errors.length, 1)
      assert.ok(errors[0] instanceof TypeError)
      assert.equal(
        errors[0].message,
        "this planship-meter middleware is for Express (import { createMeter } from 'planship-meter/express'), but it is mounted on Koa: on Koa, use import { createMeter } from 'planship-meter'",
      )
    }
  })

  it('says what it expected when the arguments are of no framework it knows', async () => {
    const layer = koaMeter.meter.middleware() as unknown as (...args: unknown[]) => unknown
    assert.throws(() => layer({}, () => {}), {
      name: 'TypeError',
      message:
        "this planship-meter middleware is for Koa (import { createMeter } from 'planship-meter'), but it was called with arguments that are not Koa's",
    })
  })
})
