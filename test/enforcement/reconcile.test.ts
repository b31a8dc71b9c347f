import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import request from 'supertest'
import type { Fixture } from '../../src/emulator/index.js'
import type { Meter } from '../../src/index.js'
import { appWith, type Harness, startHarness } from '../helpers/harness.js'

/** One customer with `allowance` calls in all, and a per-bucket lever of 3 per project. */
function fixture(allowance: number): Fixture {
  return {
    credentials: [{ clientId: 'rc-id', clientSecret: 'rc-secret' }],
    products: [
      {
        slug: 'rc-api',
        levers: [
          { slug: 'calls', type: 'metered', meteringIds: ['call'], period: 'all-time' },
          { slug: 'exports', type: 'metered', meteringIds: ['export'], formula: 'per-bucket', period: 'all-time' },
        ],
        plans: [{ slug: 'basic', entitlements: { calls: allowance, exports: 3 } }],
      },
    ],
    customers: [{ alternativeId: 'rc-customer', subscriptions: [{ product: 'rc-api', plan: 'basic' }] }],
  }
}

/**
 * A meter that refreshes its snapshot every 40 ms and reports every 20 ms: a test of a few
 * hundred ms goes through many refreshes, each of which must reconcile what was reported.
 */
async function harness(allowance: number): Promise<Harness> {
  return startHarness({
    emulator: { fixture: fixture(allowance) },
    meter: { cache: { ttlMs: 40 }, reporting: { flushIntervalMs: 20, closeTimeoutMs: 2_000 } },
  })
}

function client(meter: Meter, meteringId = 'call') {
  const app = appWith(meter.consume(meteringId, { bucket: (ctx) => ctx.get('x-project') || undefined }))
  const callback = app.callback()
  return async (project?: string): Promise<number> => {
    const req = request(callback).post('/').set('x-customer-id', 'rc-customer')
    return (await (project === undefined ? req : req.set('x-project', project))).status
  }
}

/** The statuses must be all the allowance's 200s first, then only 429s: no 429 while units are left. */
function assertExact(statuses: number[], allowance: number): void {
  const admitted = statuses.filter((status) => status === 200).length
  assert.equal(admitted, allowance, `admitted ${admitted} of ${allowance}`)
  assert.equal(statuses.indexOf(429), allowance, `first 429 at request ${statuses.indexOf(429) + 1}`)
  assert.ok(
    statuses.every((status) => status === 200 || status === 429),
    statuses.join(' '),
  )
}

describe('reconciling local usage with each new snapshot', function () {
  this.timeout(20_000)
  let h: Harness
  afterEach(() => h.close())

  for (const lagMs of [0, 2_000]) {
    it(`admits exactly the allowance, sequentially, with no 429 while units are left (Planship lag ${lagMs} ms)`, async () => {
      h = await harness(50)
      h.emu.setAggregationLag(lagMs)
      const call = client(h.meter)
      const statuses: number[] = []
      for (let i = 0; i < 60; i++) {
        statuses.push(await call())
        await sleep(8) // spans several refreshes and flushes
      }
      assertExact(statuses, 50)
      await h.meter.flush()
      assert.equal(h.emu.recordedUsage({ customerId: 'rc-customer' }), 50)
    })
  }

  it('stays exact while Planship’s lag changes during the run', async () => {
    h = await harness(50)
    const call = client(h.meter)
    const statuses: number[] = []
    for (let i = 0; i < 60; i++) {
      if (i === 15) h.emu.setAggregationLag(2_000)
      if (i === 30) h.emu.setAggregationLag(0)
      if (i === 40) h.emu.setAggregationLag(300)
      statuses.push(await call())
      await sleep(8)
    }
    assertExact(statuses, 50)
  })

  for (const lagMs of [0, 2_000]) {
    it(`admits exactly the allowance under waves of 50 concurrent requests (Planship lag ${lagMs} ms)`, async () => {
      h = await harness(120)
      h.emu.setAggregationLag(lagMs)
      const call = client(h.meter)
      let admitted = 0
      for (let wave = 0; wave < 4; wave++) {
        const statuses = await Promise.all(Array.from({ length: 50 }, () => call()))
        const ok = statuses.filter((status) => status === 200).length
        // Every wave takes what is left, up to its size: no wave is refused while units remain.
        assert.equal(ok, Math.min(50, 120 - admitted), `wave ${wave + 1}: ${ok} admitted after ${admitted}`)
        admitted += ok
        await sleep(120) // reports go out, snapshots refresh
      }
      assert.equal(admitted, 120)
      await h.meter.flush()
      assert.equal(h.emu.recordedUsage({ customerId: 'rc-customer' }), 120)
    })
  }

  it('gives a bucket Planship has not seen its full allowance after the snapshot was refreshed', async () => {
    h = await harness(50)
    const exportIn = client(h.meter, 'export')
    for (let i = 0; i < 3; i++) assert.equal(await exportIn(), 200) // unbucketed usage takes "null" to 0
    assert.equal(await exportIn(), 429)
    await h.meter.flush()
    await sleep(100) // both cached snapshots are refreshed: "null" now says 0 left in Planship itself
    assert.equal(await exportIn(), 429)
    const inP2 = [await exportIn('p2'), await exportIn('p2'), await exportIn('p2'), await exportIn('p2')]
    assert.deepEqual(inP2, [200, 200, 200, 429])
    await h.meter.flush()
    await sleep(100)
    assert.equal(await exportIn('p2'), 429, 'p2 is used up in Planship now, and stays so')
    assert.equal(await exportIn('p3'), 200)
  })
})
