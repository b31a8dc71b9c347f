import assert from 'node:assert/strict'
import { MemoryUsageStore, type LeverLimit } from '../../src/index.js'
import { manualClock } from '../helpers/harness.js'

/** Reserves and commits one unreported unit for `customerId` without limits; whether it was admitted. */
function admitOne(store: MemoryUsageStore, clock: { now(): number }, customerId: string): boolean {
  const result = store.reserve({
    customerId,
    meteringId: 'api-call',
    bucket: undefined,
    cost: 1,
    limits: [],
    snapshotAt: clock.now(),
  })
  if (result.ok) store.commit(result.reservation, 1)
  return result.ok
}

describe('MemoryUsageStore', () => {
  const key = { customerId: 'c', meteringId: 'api-call', bucket: undefined }
  const limit = (remaining: number, extra: Partial<LeverLimit> = {}): LeverLimit => ({
    lever: 'api-calls',
    remaining,
    meteringIds: ['api-call'],
    perBucket: false,
    ...extra,
  })

  function setup(forget?: (customerId: string) => boolean) {
    const clock = manualClock()
    const store = new MemoryUsageStore({
      aggregationLagMs: 5_000,
      maxSnapshotAgeMs: 60_000,
      maxCustomers: 3,
      maxPendingKeys: 6,
      clock,
      forget,
    })
    return { clock, store }
  }

  it('counts reserved, pending and in-flight units against the snapshot', () => {
    const { clock, store } = setup()
    const snapshotAt = clock.now()
    const reserve = (cost: number) => store.reserve({ ...key, cost, limits: [limit(5)], snapshotAt })
    const first = reserve(2)
    assert.ok(first.ok)
    store.commit(first.reservation, 2)
    const second = reserve(2)
    assert.ok(second.ok)
    assert.deepEqual(reserve(2), { ok: false, lever: 'api-calls', remaining: 1 })
    store.release(second.reservation)
    assert.ok(reserve(3).ok)
    assert.equal(store.pendingUnits(), 2)
  })

  it('keeps acknowledged usage counting until a snapshot taken aggregationLagMs later', () => {
    const { clock, store } = setup()
    const r = store.reserve({ ...key, cost: 5, limits: [limit(5)], snapshotAt: clock.now() })
    assert.ok(r.ok)
    store.commit(r.reservation, 5)
    for (const report of store.takePending()) store.acknowledge(report, clock.now())
    assert.equal(store.pendingUnits(), 0)

    clock.advance(1_000)
    // A snapshot fetched 1 s after the ack may not contain it yet: still 5 used locally.
    assert.equal(store.reserve({ ...key, cost: 1, limits: [limit(5)], snapshotAt: clock.now() }).ok, false)
    clock.advance(5_000)
    // 6 s later Planship's numbers contain it (remaining 0 there); locally nothing more counts.
    assert.equal(store.reserve({ ...key, cost: 1, limits: [limit(1)], snapshotAt: clock.now() }).ok, true)
  })

  it('charges usage of every metering id feeding a lever, and per bucket for per-bucket levers', () => {
    const { clock, store } = setup()
    const snapshotAt = clock.now()
    const shared = limit(3, { meteringIds: ['get-call', 'post-call'] })
    const a = store.reserve({
      customerId: 'c',
      meteringId: 'get-call',
      bucket: undefined,
      cost: 2,
      limits: [shared],
      snapshotAt,
    })
    assert.ok(a.ok)
    const b = store.reserve({
      customerId: 'c',
      meteringId: 'post-call',
      bucket: undefined,
      cost: 2,
      limits: [shared],
      snapshotAt,
    })
    assert.equal(b.ok, false)

    const perBucket = limit(2, { perBucket: true })
    const inA = store.reserve({ ...key, bucket: 'A', cost: 2, limits: [perBucket], snapshotAt })
    const inB = store.reserve({ ...key, bucket: 'B', cost: 2, limits: [perBucket], snapshotAt })
    assert.ok(inA.ok && inB.ok)
    assert.equal(store.reserve({ ...key, bucket: 'A', cost: 1, limits: [perBucket], snapshotAt }).ok, false)
  })

  it('puts failed reports back with newer usage and forgets discarded ones', () => {
    const { clock, store } = setup()
    const r1 = store.reserve({ ...key, cost: 2, limits: [], snapshotAt: clock.now() })
    assert.ok(r1.ok)
    store.commit(r1.reservation, 2)
    const [report] = store.takePending()
    assert.ok(report)
    const r2 = store.reserve({ ...key, cost: 1, limits: [], snapshotAt: clock.now() })
    assert.ok(r2.ok)
    store.commit(r2.reservation, 1)
    store.restore(report, clock.now() + 1_000)
    assert.deepEqual(store.takePending(clock.now()), [], 'the key waits out its backoff in background passes')
    assert.deepEqual(store.takePending(), [{ ...key, usage: 3, failures: 1 }], 'an explicit flush takes it')
    store.discard({ ...key, usage: 3, failures: 1 })
    assert.equal(store.pendingUnits(), 0)
    assert.equal(store.size, 0, 'nothing is kept for a customer with nothing left to count')
  })

  it('under a report budget, takes the busy keys that waited longest first, and every idle key', () => {
    const { clock, store } = setup()
    for (const customerId of ['a', 'b', 'c', 'd']) assert.ok(admitOne(store, clock, customerId))
    clock.advance(2_000) // a, b, c, d are idle by now
    for (const customerId of ['e', 'f']) {
      clock.advance(10)
      assert.ok(admitOne(store, clock, customerId))
    }
    const taken = store.takePending(clock.now(), { busy: 1, idleBefore: clock.now() - 1_000 })
    assert.deepEqual(
      taken.map((report) => report.customerId),
      ['a', 'b', 'c', 'd', 'e'],
    )
    assert.deepEqual(
      store.takePending().map((report) => report.customerId),
      ['f'],
    )
  })

  it('matches a fall of remaining to acknowledged usage older than the lag first, not to newer usage', () => {
    const { clock, store } = setup() // aggregationLagMs 5 000
    const start = clock.now()
    const at = (snapshotAt: number, remaining: number, cost: number) =>
      store.reserve({ ...key, cost, limits: [limit(remaining)], snapshotAt, receivedAt: snapshotAt })
    const use = (units: number) => {
      const r = at(start, 100, units)
      assert.ok(r.ok)
      store.commit(r.reservation, units)
      for (const report of store.takePending()) store.acknowledge({ ...report, sentAt: clock.now() }, clock.now())
    }
    at(start, 100, 0) // the first snapshot: 100 left
    clock.advance(10)
    use(10) // old: Planship has it by the next snapshot
    clock.advance(8_000)
    use(10) // recent: not in Planship's numbers yet
    clock.advance(300)
    // The next snapshot says 90: the old 10 units, not the recent ones, are in it.
    const result = at(clock.now(), 90, 1)
    assert.ok(result.ok)
    assert.deepEqual(result.least, { lever: 'api-calls', remaining: 90 - 10 - 1 })
  })

  it('forgets the least recently active customers past maxCustomers, never one with usage to send', () => {
    const forgotten: string[] = []
    // Their cached snapshots go with them: acknowledged usage older than the lag is needed no more.
    const { clock, store } = setup((customerId) => forgotten.push(customerId) > 0)
    const admit = (customerId: string) => assert.ok(admitOne(store, clock, customerId))
    admit('busy') // stays pending: never forgotten
    for (const customer of ['a', 'b', 'c', 'd']) admit(customer)
    for (const report of store.takePending()) if (report.customerId !== 'busy') store.acknowledge(report, clock.now())
    admit('e')
    assert.ok(store.size >= 6, 'usage acknowledged within the aggregation lag still counts: kept')
    clock.advance(5_001)
    for (const customer of ['f', 'g']) admit(customer)
    assert.ok(store.size <= 3 + 1, `${store.size} customers kept`)
    assert.equal(store.pendingUnits(), 4, 'busy + e, f, g are still to be sent')
    assert.ok(!forgotten.includes('busy') && forgotten.length >= 4, `forgotten with their snapshots: ${forgotten}`)
  })

  it('without dropping snapshots, keeps acknowledged usage as long as a snapshot may lack it', () => {
    const { clock, store } = setup() // no `forget`: a cached snapshot may predate the usage
    for (const customer of ['a', 'b', 'c', 'd']) assert.ok(admitOne(store, clock, customer))
    for (const report of store.takePending()) store.acknowledge(report, clock.now())
    clock.advance(5_001) // past the lag, within the snapshot age (60 s)
    assert.ok(admitOne(store, clock, 'e'))
    assert.equal(store.size, 5, 'kept: forgetting them would over-admit against an older snapshot')
    clock.advance(60_000)
    assert.ok(admitOne(store, clock, 'f'))
    assert.ok(store.size <= 4)
  })

  it('refuses a new key once maxPendingKeys keys wait for delivery, and takes it again after a flush', () => {
    const { clock, store } = setup()
    const admit = (customerId: string) => admitOne(store, clock, customerId)
    for (let i = 0; i < 6; i++) assert.ok(admit(`k${i}`))
    assert.equal(admit('k6'), false, 'a seventh key does not fit')
    assert.ok(admit('k0'), 'an existing key still aggregates')
    for (const report of store.takePending()) store.acknowledge(report, clock.now())
    assert.ok(admit('k6'))
  })
})
