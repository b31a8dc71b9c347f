import assert from 'node:assert/strict'
import express, { type ErrorRequestHandler } from 'express'
import Fastify, { type preHandlerHookHandler } from 'fastify'
import Koa from 'koa'
import request from 'supertest'
import { type ExpressHarness, startExpressHarness } from '../helpers/express.js'
import { type FastifyHarness, startFastifyHarness } from '../helpers/fastify.js'
import { type Harness, startHarness } from '../helpers/harness.js'

/** A Koa or Express meter on Fastify, or the Fastify meter elsewhere, says so and names the import to use. */
describe('Fastify: a meter mounted on the wrong framework', () => {
  let koaMeter: Harness
  let expressMeter: ExpressHarness
  let fastifyMeter: FastifyHarness
  before(async () => {
    koaMeter = await startHarness()
    expressMeter = await startExpressHarness()
    fastifyMeter = await startFastifyHarness()
  })
  after(async () => {
    await koaMeter.close()
    await expressMeter.close()
    await fastifyMeter.close()
  })

  const onFastify = (name: string, entry: string) =>
    `TypeError: this planship-meter middleware is for ${name} (import { createMeter } from '${entry}'), but it is mounted on Fastify: on Fastify, use import { createMeter } from 'planship-meter/fastify'`

  /** Answers the 500 with the error Fastify received. */
  async function onFastifyApp(hook: unknown): Promise<string> {
    const app = Fastify()
    app.setErrorHandler(async (error, _request, reply) =>
      reply.code(500).send({ error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) }),
    )
    app.get('/', { preHandler: hook as preHandlerHookHandler }, async () => ({ ok: true }))
    const res = await app.inject({ url: '/', headers: { 'x-customer-id': 'pro-customer' } })
    assert.equal(res.statusCode, 500)
    return (res.json() as { error: string }).error
  }

  it("the Koa meter's middleware on Fastify names planship-meter/fastify", async () => {
    const { meter } = koaMeter
    for (const layer of [meter.middleware(), meter.consume('api-call'), meter.requireFeature('csv-export')]) {
      assert.equal(await onFastifyApp(layer), onFastify('Koa', 'planship-meter'))
    }
  })

  it("the Express meter's middleware on Fastify names planship-meter/fastify", async () => {
    const { meter } = expressMeter
    for (const layer of [meter.middleware(), meter.consume('api-call'), meter.requireFeature('csv-export')]) {
      assert.equal(await onFastifyApp(layer), onFastify('Express', 'planship-meter/express'))
    }
  })

  it("the Fastify meter's hooks on Express and Koa name the import of each", async () => {
    const { meter } = fastifyMeter
    for (const hook of [meter.consume('api-call'), meter.requireFeature('csv-export')]) {
      const app = express()
      app.use(hook as unknown as express.RequestHandler)
      const errorMessage: ErrorRequestHandler = (error: unknown, _req, res, _next) => {
        res.status(500).json({ error: error instanceof Error ? error.message : String(error) })
      }
      app.use(errorMessage)
      const res = await request(app).get('/').set('x-customer-id', 'pro-customer').expect(500)
      assert.equal(
        res.body.error,
        "this planship-meter middleware is for Fastify (import { createMeter } from 'planship-meter/fastify'), but it is mounted on Express: on Express, use import { createMeter } from 'planship-meter/express'",
      )

      const koa = new Koa()
      koa.silent = true
      const errors: unknown[] = []
      koa.on('error', (error) => errors.push(error))
      koa.use(hook as unknown as Koa.Middleware)
      await request(koa.callback()).get('/').set('x-customer-id', 'pro-customer').expect(500)
      assert.ok(errors[0] instanceof TypeError)
      assert.match(
        errors[0].message,
        /is for Fastify .* mounted on Koa: on Koa, use import \{ createMeter \} from 'planship-meter'$/,
      )
    }
  })
})
