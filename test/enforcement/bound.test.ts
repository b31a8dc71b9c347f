import assert from 'node:assert/strict'
import { CircuitBreaker } from '../../src/enforcement/backoff.js'
import { RefreshingCache } from '../../src/enforcement/cache.js'
import { type Fixture, startEmulator } from '../../src/emulator/index.js'
import { createMeter, MemoryUsageStore } from '../../src/index.js'
import { manualClock } from '../helpers/harness.js'

/** One lever of 20 calls per customer, and `n` customers subscribed to it. */
function fixture(customers: string[]): Fixture {
  return {
    credentials: [{ clientId: 'bound-id', clientSecret: 'bound-secret' }],
    products: [
      {
        slug: 'bound-api',
        levers: [{ slug: 'calls', type: 'metered', meteringIds: ['call'], period: 'all-time' }],
        plans: [{ slug: 'basic', entitlements: { calls: 20 } }],
      },
    ],
    customers: customers.map((alternativeId) => ({
      alternativeId,
      subscriptions: [{ product: 'bound-api', plan: 'basic' }],
    })),
  }
}

describe('the customer bound (cache.max)', () => {
  /**
   * A meter that keeps 2 customers (`cache.max`), on a manual clock and never flushing by itself,
   * over an emulator where `customer` and six others have 20 calls each.
   */
  async function boundedMeter(customer: string, cache: { aggregationLagMs?: number } = {}) {
    const others = Array.from({ length: 6 }, (_, i) => `other-${i}`)
    const emu = await startEmulator({ fixture: fixture([customer, ...others]) })
    const clock = manualClock()
    const meter = createMeter({
      productSlug: 'bound-api',
      planship: { baseUrl: emu.url, clientId: 'bound-id', clientSecret: 'bound-secret' },
      cache: { max: 2, ...cache },
      reporting: { flushIntervalMs: 3_600_000 },
      clock,
    })
    return { emu, meter, clock, others }
  }

  /**
   * `count` one-off customers through the memory store and a cache of `max`, a thousand a second,
   * with a flush every `flushEvery` customers (a second); the first `stuck` customers' reports
   * always fail (Planship refusing them for a while). Returns the most customers either held at once.
   */
  async function churn(count: number, { stuck = 0, flushEvery = 1_000 } = {}) {
    const clock = manualClock()
    const max = 10_000
    const cache = new RefreshingCache<{ calls: number }>({
      max,
      ttlMs: 30_000,
      maxStaleMs: 300_000,
      clock,
      breaker: new CircuitBreaker(clock),
      load: async () => ({ calls: 20 }),
      onRefreshError: () => {},
    })
    const store = new MemoryUsageStore({
      aggregationLagMs: 5_000,
      maxSnapshotAgeMs: 330_000,
      maxCustomers: max,
      maxPendingKeys: 100_000,
      clock,
      forget: (customerId) => cache.forget(customerId),
    })
    let largest = 0
    for (let i = 0; i < count; i++) {
      clock.advance(1) // a thousand new customers a second
      const customerId = `once-${i}`
      const { snapshot } = await cache.get(customerId)
      const limits = [{ lever: 'calls', remaining: snapshot.value.calls, meteringIds: ['call'], perBucket: false }]
      const result = store.reserve({
        customerId,
        meteringId: 'call',
        bucket: undefined,
        cost: 1,
        limits,
        snapshotAt: snapshot.fetchedAt,
        receivedAt: snapshot.receivedAt,
      })
      assert.ok(result.ok)
      store.commit(result.reservation, 1)
      if (i % flushEvery === flushEvery - 1) {
        // A flush a second: every report acknowledged but those of the stuck customers.
        for (const report of store.takePending()) {
          if (Number(report.customerId.slice('once-'.length)) < stuck) store.restore(report)
          else store.acknowledge(report, clock.now())
        }
      }
      largest = Math.max(largest, store.size, cache.size)
    }
    return { largest, max, pendingUnits: store.pendingUnits(), store, clock }
  }

  it('keeps at most cache.max customers in memory through 200 000 one-off customers', async function () {
    this.timeout(30_000)
    const { largest, max, pendingUnits } = await churn(200_000)
    assert.ok(largest <= max, `at most ${max} customers, saw ${largest}`)
    assert.equal(pendingUnits, 0)
  })

  it('keeps the bound when the oldest customers’ usage cannot be delivered: they stay, the rest go', async function () {
    this.timeout(30_000)
    const stuck = 50
    const { largest, max, pendingUnits } = await churn(100_000, { stuck })
    // Kept beyond the bound at most by those whose usage waits (before, it grew without end).
    assert.ok(largest <= max + stuck, `at most ${max} + ${stuck} customers, saw ${largest}`)
    assert.equal(pendingUnits, stuck, 'the undelivered usage is kept')
  })

  it('comes back to the bound once a backlog is delivered, with no new customer to make room for', async function () {
    this.timeout(30_000)
    // Planship unreachable for 30 s of new customers: nothing can be forgotten meanwhile.
    const { largest, max, store, clock } = await churn(30_000, { flushEvery: Infinity })
    assert.equal(largest, 30_000)
    for (const report of store.takePending()) store.acknowledge(report, clock.now())
    clock.advance(5_001) // past the aggregation lag: the delivered usage is in Planship's numbers
    store.takePending() // the next flush pass
    assert.ok(store.size <= max, `at most ${max} customers after the pass, saw ${store.size}`)
  })

  it('a customer with 10 of 20 left, forgotten and seen again, gets exactly 10 more', async function () {
    this.timeout(10_000)
    const { emu, meter, clock, others } = await boundedMeter('half-used', { aggregationLagMs: 1_000 })
    try {
      const half = await meter.reserve('half-used', 'call', { cost: 10 })
      assert.ok(half.allowed)
      await half.commit()
      await meter.flush()
      clock.advance(1_001) // past the aggregation lag, well within the snapshot’s life (30 s)
      for (const other of others) {
        const d = await meter.reserve(other, 'call')
        assert.ok(d.allowed)
        await d.commit()
        await meter.flush()
        clock.advance(1_001)
        // Its entitlements stay among the most recently used (the reverted fix forgot its usage
        // and kept this snapshot, from before the 10 units: it then admitted 11 more).
        assert.equal(await meter.isEntitled('half-used', 'calls'), true)
      }
      let admitted = 0
      for (let i = 0; i < 15; i++) {
        const d = await meter.reserve('half-used', 'call')
        if (!d.allowed) continue
        admitted++
        await d.commit()
      }
      assert.equal(admitted, 10)
    } finally {
      await meter.close()
      await emu.close()
    }
  })

  it('never drops pending usage: it is delivered first, and counts until then', async function () {
    this.timeout(10_000)
    const { emu, meter, clock, others } = await boundedMeter('pending')
    try {
      const d = await meter.reserve('pending', 'call', { cost: 15 })
      assert.ok(d.allowed)
      await d.commit()
      for (const other of others) {
        const o = await meter.reserve(other, 'call')
        assert.ok(o.allowed)
        await o.release()
        clock.advance(60_000)
      }
      // Not delivered yet, and still counted: 5 left, not 20.
      assert.equal((await meter.reserve('pending', 'call', { cost: 6 })).allowed, false)
      await meter.flush()
      assert.equal(emu.recordedUsage({ customerId: 'pending', meteringId: 'call' }), 15)
    } finally {
      await meter.close()
      await emu.close()
    }
  })
})
