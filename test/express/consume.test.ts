import assert from 'node:assert/strict'
import express from 'express'
import request from 'supertest'
import { createMeter } from '../../src/express/index.js'
import { expressDemoApp, jsonErrors, startExpressHarness } from '../helpers/express.js'
import { leversFixture } from '../helpers/fixtures.js'
import { assertRendersUntouched, eachServedDemo } from '../helpers/harness.js'

describe('Express: consume()', () => {
  const { harness, call } = eachServedDemo(() => startExpressHarness(), expressDemoApp)

  it('puts the identified customer on res.locals.planship for the handler', async () => {
    harness()
    const res = await call('/renders', 'pro-customer').expect(200)
    assert.equal(res.body.customer, 'pro-customer')
  })

  it('does not report failed responses: a 500, a thrown error and a rejected promise release their reservation', async () => {
    const h = harness()
    h.emu.createCustomer('failing', 'free')
    const app = express()
    app.use(h.meter.middleware())
    app.post('/fail', h.meter.consume('render'), (_req, res) => {
      res.status(500).json({ error: 'boom' })
    })
    app.post('/throw', h.meter.consume('render'), () => {
      throw new Error('handler crashed')
    })
    app.post('/reject', h.meter.consume('render'), async () => {
      throw new Error('async handler crashed')
    })
    app.use(jsonErrors)
    for (let i = 0; i < 5; i++) {
      for (const path of ['/fail', '/throw', '/reject'])
        await request(app).post(path).set('x-customer-id', 'failing').expect(500)
    }
    // Fifteen failures consumed nothing: all 5 renders of the minute are still there.
    await assertRendersUntouched(h, 'failing', () => call('/renders', 'failing'))
  })

  it('reserves a dynamic cost, reports a usage read after the handler, under a bucket', async () => {
    const h = harness()
    const app = express()
    app.get(
      '/rows',
      h.meter.consume('api-call', {
        cost: (req) => Number(req.query['limit']),
        usage: (_req, res) => Number(res.get('x-rows')),
        bucket: (req) => req.get('x-project'),
      }),
      (_req, res) => {
        res.set('x-rows', '3').json([0, 1, 2])
      },
    )
    await request(app).get('/rows?limit=10').set('x-customer-id', 'pro-customer').set('x-project', 'proj A').expect(200)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call', bucket: 'proj A' }), 3)
  })

  it('reads usage once the response has finished, not when the handler returns', async () => {
    const h = harness()
    const app = express()
    let rows = 0
    app.get('/stream', h.meter.consume('api-call', { usage: () => rows }), (_req, res) => {
      res.write('[')
      // The handler returns at once; the rows are counted as the response goes out.
      setTimeout(() => {
        rows = 7
        res.end(']')
      }, 20)
    })
    await request(app).get('/stream').set('x-customer-id', 'pro-customer').expect(200)
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 7)
  })

  it('lets shouldReport decide from the finished response', async () => {
    const h = harness()
    const meter = createMeter({ ...h.options })
    const app = express()
    app.get(
      '/maybe',
      meter.consume('api-call', { shouldReport: (_req, res) => res.get('x-billable') === 'yes' }),
      (req, res) => {
        res.set('x-billable', String(req.query['billable'])).json({})
      },
    )
    await request(app).get('/maybe?billable=yes').set('x-customer-id', 'pro-customer').expect(200)
    await request(app).get('/maybe?billable=no').set('x-customer-id', 'pro-customer').expect(200)
    await meter.close()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 1)
  })

  it('limits a per-bucket lever per bucket (on a product of its own)', async () => {
    const h = await startExpressHarness({ emulator: { fixture: leversFixture } })
    const app = express()
    app.post('/export', h.meter.consume('export', { bucket: (req) => req.get('x-project') }), (_req, res) => {
      res.json({})
    })
    const exportIn = (project: string) =>
      request(app).post('/export').set('x-customer-id', 'lever-customer').set('x-project', project)
    for (const project of ['A', 'B']) {
      for (let i = 0; i < 3; i++) await exportIn(project).expect(200)
      await exportIn(project).expect(429)
    }
    await h.meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'lever-customer', meteringId: 'export', bucket: 'A' }), 3)
    assert.equal(h.emu.recordedUsage({ customerId: 'lever-customer', meteringId: 'export', bucket: 'B' }), 3)
    await h.close()
  })
})
