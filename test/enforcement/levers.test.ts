import assert from 'node:assert/strict'
import Koa from 'koa'
import request from 'supertest'
import type { Fixture } from '../../src/emulator/index.js'
import type { Meter, PlanshipState } from '../../src/index.js'
import { startHarness } from '../helpers/harness.js'

/** A product whose metering ids feed per-bucket, shared and zero-allowance levers. */
const fixture: Fixture = {
  credentials: [{ clientId: 'levers-id', clientSecret: 'levers-secret' }],
  products: [
    {
      slug: 'levers-api',
      levers: [
        {
          slug: 'exports-per-project',
          type: 'metered',
          meteringIds: ['export'],
          formula: 'per-bucket',
          period: 'all-time',
        },
        { slug: 'calls-total', type: 'metered', meteringIds: ['get-call', 'post-call'], period: 'all-time' },
        { slug: 'gpu-minutes', type: 'metered', meteringIds: ['gpu'], period: 'all-time' },
      ],
      plans: [{ slug: 'basic', entitlements: { 'exports-per-project': 3, 'calls-total': 4, 'gpu-minutes': 0 } }],
    },
  ],
  customers: [{ alternativeId: 'lever-customer', subscriptions: [{ product: 'levers-api', plan: 'basic' }] }],
}

function app(meter: Meter, meteringId: string, cost = 1) {
  const koa = new Koa<PlanshipState>()
  koa.use(meter.consume(meteringId, { cost, bucket: (ctx) => ctx.get('x-project') || undefined }))
  koa.use((ctx) => {
    ctx.body = 'ok'
  })
  return (project?: string) => {
    const req = request(koa.callback()).post('/').set('x-customer-id', 'lever-customer')
    return project === undefined ? req : req.set('x-project', project)
  }
}

describe('levers beyond one metering id per quota', () => {
  it('limits per-bucket levers per bucket, giving a bucket Planship has not seen the whole allowance', async () => {
    const h = await startHarness({ emulator: { fixture } })
    const post = app(h.meter, 'export')
    for (let i = 0; i < 3; i++) await post().expect(200) // unbucketed usage takes "null" to 0
    await post().expect(429)
    await h.meter.flush()
    for (let i = 0; i < 3; i++) await post('p2').expect(200)
    await post('p2').expect(429)
    await post('p3').expect(200)
    await h.close()
  })

  it('charges every metering id that feeds a lever against it', async () => {
    const h = await startHarness({ emulator: { fixture } })
    const get = app(h.meter, 'get-call')
    const post = app(h.meter, 'post-call')
    await get().expect(200)
    await post().expect(200)
    await get().expect(200)
    await post().expect(200)
    await post().expect(429)
    await get().expect(429)
    await h.close()
  })

  it('refuses even a zero cost on a lever with no allowance (0 means no access)', async () => {
    const h = await startHarness({ emulator: { fixture } })
    const res = await app(h.meter, 'gpu', 0)().expect(429)
    assert.equal(res.body.error.lever, 'gpu-minutes')
    await h.close()
  })
})
