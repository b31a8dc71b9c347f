import assert from 'node:assert/strict'
import { getRequestListener } from '@hono/node-server'
import express, { type ErrorRequestHandler } from 'express'
import express4 from 'express4'
import { Hono, type MiddlewareHandler } from 'hono'
import Koa from 'koa'
import request from 'supertest'
import { type ExpressHarness, startExpressHarness } from '../helpers/express.js'
import { type Harness, startHarness } from '../helpers/harness.js'
import { type HonoHarness, startHonoHarness } from '../helpers/hono.js'

/** What Express's error handling receives, answered as the body of the 500. */
const errorMessage: ErrorRequestHandler = (error: unknown, _req, res, _next) => {
  res.status(500).json({ error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) })
}

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

describe('Hono and a meter of another framework', () => {
  let honoMeter: HonoHarness
  let koaMeter: Harness
  let expressMeter: ExpressHarness
  before(async () => {
    honoMeter = await startHonoHarness()
    koaMeter = await startHarness()
    expressMeter = await startExpressHarness()
  })
  after(async () => {
    await honoMeter.close()
    await koaMeter.close()
    await expressMeter.close()
  })

  const ON_HONO = "on Hono, use import { createMeter } from 'planship-meter/hono'"

  it('the Koa and Express meters on Hono throw into app.onError, naming planship-meter/hono', async () => {
    for (const [name, layer] of [
      ['Koa', koaMeter.meter.consume('api-call')],
      ['Koa', koaMeter.meter.requireFeature('csv-export')],
      ['Express', expressMeter.meter.middleware()],
      ['Express', expressMeter.meter.consume('api-call')],
    ] as const) {
      const app = new Hono()
      const errors: Error[] = []
      app.use(layer as unknown as MiddlewareHandler)
      app.get('/', (c) => c.text('ran'))
      app.onError((error, c) => {
        errors.push(error)
        return c.text(error.message, 500)
      })
      await request(getRequestListener(app.fetch)).get('/').set('x-customer-id', 'pro-customer').expect(500)
      assert.ok(errors[0] instanceof TypeError, name)
      assert.ok(errors[0].message.startsWith(`this planship-meter middleware is for ${name} `), errors[0].message)
      assert.ok(errors[0].message.endsWith(`but it is mounted on Hono: ${ON_HONO}`), errors[0].message)
    }
  })

  it("the Hono meter's middleware on Koa and Express throws, naming their imports", async () => {
    const { meter } = honoMeter
    const layers = [meter.middleware(), meter.consume('api-call'), meter.requireFeature('csv-export')]
    const FOR_HONO =
      "this planship-meter middleware is for Hono (import { createMeter } from 'planship-meter/hono'), but it is mounted on"
    for (const layer of layers) {
      const koa = new Koa()
      koa.silent = true
      const errors: unknown[] = []
      koa.on('error', (error) => errors.push(error))
      koa.use(layer as unknown as Koa.Middleware)
      await request(koa.callback()).get('/').set('x-customer-id', 'pro-customer').expect(500)
      assert.ok(errors[0] instanceof TypeError)
      assert.equal(errors[0].message, `${FOR_HONO} Koa: on Koa, use import { createMeter } from 'planship-meter'`)

      for (const framework of [express, express4 as unknown as typeof express]) {
        const app = framework()
        app.use(layer as unknown as express.RequestHandler)
        app.use(errorMessage)
        const res = await request(app).get('/').set('x-customer-id', 'pro-customer').expect(500)
        assert.equal(
          res.body.error,
          `TypeError: ${FOR_HONO} Express: on Express, use import { createMeter } from 'planship-meter/express'`,
        )
      }
    }
  })
})
