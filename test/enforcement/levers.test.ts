import assert from 'node:assert/strict'
import Koa from 'koa'
import request from 'supertest'
import type { Meter, PlanshipState } from '../../src/index.js'
import { leversFixture as fixture } from '../helpers/fixtures.js'
import { startHarness } from '../helpers/harness.js'

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
