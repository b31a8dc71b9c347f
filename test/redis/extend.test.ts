import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import type { Reservation, ReserveRequest } from '../../src/index.js'
import type { RedisUsageStore, RedisUsageStoreOptions } from '../../src/redis/index.js'
import { eventually, manualClock } from '../helpers/harness.js'
import { boundStore, connected, OwnRedis, redisClient, uniquePrefix } from './support.js'

const CUSTOMER = 'stream-customer'

/**
 * Exactness holds while Redis answers within the deadline; past it a store decides alone (tested
 * below). 50 ms is sometimes missed on a loaded 2-core test machine: these tests give Redis a second.
 */
const EXACT = { commandTimeoutMs: 1_000 }

/** `cost` units of `call` for the stream customer, against a quota with `remaining` units left. */
function ask(cost: number, remaining: number): ReserveRequest {
  return {
    customerId: CUSTOMER,
    meteringId: 'call',
    bucket: undefined,
    cost,
    limits: [{ lever: 'calls', remaining, meteringIds: ['call'], perBucket: false }],
    snapshotAt: 0,
  }
}

async function reserved(store: RedisUsageStore, cost: number, remaining: number): Promise<Reservation> {
  const result = await store.reserve(ask(cost, remaining))
  if (!result.ok) throw new Error(`not admitted: ${JSON.stringify(result)}`)
  return result.reservation
}

/** A stream: extends its reservation by `block` until refused; how many extensions were admitted. */
async function streamUntilRefused(store: RedisUsageStore, reservation: Reservation, block: number, quota: number) {
  let admitted = 0
  while ((await store.extend(reservation, ask(block, quota))).ok) admitted++
  return admitted
}

/** The time of the bound stores' manual clocks, never advanced here. */
const NOW = manualClock().now()

/**
 * Every unit pending in Redis (usage of all replicas, settled into it by `store` first for its
 * leases), sent and acknowledged now: it goes on counting against the quota.
 */
async function pendingInRedis(store: RedisUsageStore): Promise<number> {
  const reports = await store.takePending()
  for (const report of reports) await store.acknowledge(report, NOW)
  return reports.reduce((sum, report) => sum + report.usage, 0)
}

describe('RedisUsageStore.extend', function () {
  this.timeout(20_000)
  let client: Redis
  const stores: RedisUsageStore[] = []
  const clients: Redis[] = []

  /** A store bound as createMeter binds it; closed after the test. */
  function store(options: Omit<RedisUsageStoreOptions, 'client'> & { client?: Redis }, calls?: string[]) {
    const context = calls === undefined ? {} : { recordCall: (op: string) => calls.push(op) }
    const bound = boundStore({ client, ...EXACT, ...options }, context)
    stores.push(bound.store)
    return bound
  }

  before(async () => {
    client = await connected(redisClient())
  })
  afterEach(() => {
    for (const s of stores.splice(0)) s.close()
    for (const c of clients.splice(0)) c.disconnect()
  })
  after(() => client.quit())

  for (const leaseUnits of [0, 16]) {
    const leased = leaseUnits > 0 ? ` (leases of ${leaseUnits})` : ''

    it(`two streams of one customer extending concurrently in one store get exactly the quota${leased}`, async () => {
      const { store: s } = store({ keyPrefix: uniquePrefix('extend-two'), leaseUnits })
      const quota = 100
      const streams = [await reserved(s, 10, quota), await reserved(s, 10, quota)]
      await Promise.all(streams.map((stream) => streamUntilRefused(s, stream, 10, quota)))
      assert.equal(streams[0]!.cost + streams[1]!.cost, quota)
      assert.equal((await s.extend(streams[0]!, ask(1, quota))).ok, false, 'nothing left')
      await s.commit(streams[0]!, streams[0]!.cost)
      await s.commit(streams[1]!, streams[1]!.cost)
      assert.equal(await pendingInRedis(s), quota, 'every unit settles once')
    })

    it(`four replicas streaming concurrently get exactly the quota, and settle it once${leased}`, async () => {
      const keyPrefix = uniquePrefix('extend-four')
      const quota = 200
      const replicas = await Promise.all(
        [0, 1, 2, 3].map(async () => {
          const own = await connected(redisClient())
          clients.push(own)
          return store({ client: own, keyPrefix, leaseUnits }).store
        }),
      )
      const streams = await Promise.all(replicas.map((replica) => reserved(replica, 5, quota)))
      await Promise.all(replicas.map((replica, i) => streamUntilRefused(replica, streams[i]!, 5, quota)))
      assert.equal(
        streams.reduce((sum, stream) => sum + stream.cost, 0),
        quota,
        streams.map((stream) => stream.cost).join(' + '),
      )
      assert.ok(
        replicas.every((replica) => replica.mode === 'shared'),
        'decided in Redis',
      )
      // Each commits a bit less than it reserved: usage, not reservations, is what settles.
      await Promise.all(replicas.map((replica, i) => replica.commit(streams[i]!, streams[i]!.cost - 1)))
      let settled = 0
      for (const replica of replicas) settled += await pendingInRedis(replica)
      assert.equal(settled, quota - 4)
    })
  }

  it('a stream longer than reservationTtlMs keeps its hold while its process lives; released, the units come back', async () => {
    const keyPrefix = uniquePrefix('extend-renew')
    const reservationTtlMs = 1_000
    const holder = store({ keyPrefix, reservationTtlMs }).store
    const other = store({ keyPrefix, reservationTtlMs }).store
    const stream = await reserved(holder, 40, 50)
    await sleep(1_800)
    // Without renewal the hold would have expired at 1 s, and the customer been billed 60 of 50.
    assert.equal((await other.reserve(ask(20, 50))).ok, false, 'the 40 units are still held')
    await sleep(700)
    await holder.release(stream)
    assert.equal((await other.reserve(ask(20, 50))).ok, true, 'released: admitted')
  })

  it('renews only open holds: no call while none is open, and none after commit or release', async () => {
    const keyPrefix = uniquePrefix('extend-renew-cost')
    const calls: string[] = []
    const s = store({ keyPrefix, reservationTtlMs: 300 }, calls).store
    const renewals = () => calls.filter((call) => call === 'planshipMeterRenew').length
    await sleep(400)
    assert.equal(renewals(), 0, 'nothing open, nothing renewed')
    const first = await reserved(s, 1, 50)
    const second = await reserved(s, 1, 50)
    await sleep(450)
    const whileOpen = renewals()
    assert.ok(whileOpen >= 1, 'renewed while open')
    await s.commit(first, 1)
    await s.release(second)
    await sleep(50) // a renewal already on its way may still answer
    const settled = renewals()
    await sleep(400)
    assert.equal(renewals(), settled, 'nothing renewed after commit and release')
  })

  it('a hold that expired (its holder stopped renewing) is not brought back unless all of it fits again', async () => {
    const keyPrefix = uniquePrefix('extend-expired')
    const reservationTtlMs = 300
    const { store: holder } = boundStore({ client, keyPrefix, reservationTtlMs, ...EXACT })
    const other = store({ keyPrefix, reservationTtlMs }).store
    const stream = await reserved(holder, 30, 50)
    holder.close() // stops renewing, as a process that died would (its client still answers)
    await sleep(reservationTtlMs + 200)
    const taken = await reserved(other, 20, 50)
    assert.equal(taken.cost, 20, 'the expired hold’s units went back to the fleet')
    assert.equal((await holder.extend(stream, ask(5, 50))).ok, false, '30 + 5 do not fit next to 20')
    assert.equal(stream.cost, 30)
    await other.release(taken)
    assert.equal((await holder.extend(stream, ask(5, 50))).ok, true, 'all 35 fit again: held again')
    assert.equal((await other.reserve(ask(16, 50))).ok, false, 'the 35 are held')
    await holder.commit(stream, 35)
    assert.equal(await pendingInRedis(other), 35, 'its usage settles once')
  })

  it('a stream on leases extends beyond its lease and settles exactly its usage', async () => {
    const keyPrefix = uniquePrefix('extend-lease')
    const s = store({ keyPrefix, leaseUnits: 8 }).store
    const other = store({ keyPrefix }).store
    const stream = await reserved(s, 1, 100)
    for (let i = 0; i < 10; i++) assert.equal((await s.extend(stream, ask(3, 100))).ok, true)
    assert.equal(stream.cost, 31)
    await s.commit(stream, 29)
    await s.takeUndelivered() // settles the lease and gives its unused units back, as close() does
    assert.equal(await pendingInRedis(other), 29)
    // 29 pending, nothing held any more: exactly 71 left.
    assert.equal((await other.reserve(ask(71, 100))).ok, true)
    assert.equal((await other.reserve(ask(1, 100))).ok, false)
  })

  it('a leased stream that ends uses up its units: streams still running are not admitted them again', async () => {
    const keyPrefix = uniquePrefix('extend-lease-end')
    const s = store({ keyPrefix, leaseUnits: 16 }).store
    const first = await reserved(s, 10, 100)
    // More than one lease holds: some of it is reserved beside the lease (parts).
    for (let i = 0; i < 3; i++) assert.equal((await s.extend(first, ask(10, 100))).ok, true)
    const others = [await reserved(s, 10, 100), await reserved(s, 10, 100)]
    await Promise.all(others.map((stream) => streamUntilRefused(s, stream, 10, 100)))
    assert.equal(first.cost + others[0]!.cost + others[1]!.cost, 100)
    await s.commit(first, 40)
    // Its 40 units are used: none of them may come back to the lease for the streams going on.
    assert.equal((await s.extend(others[0]!, ask(10, 100))).ok, false)
    assert.equal((await s.reserve(ask(10, 100))).ok, false)
  })

  for (const leaseUnits of [0, 4]) {
    it(`an extension still on its way when its stream ends is given back${leaseUnits > 0 ? ' (leases)' : ''}`, async () => {
      const keyPrefix = uniquePrefix('extend-race')
      const s = store({ keyPrefix, leaseUnits }).store
      const other = store({ keyPrefix }).store
      const stream = await reserved(s, 1, 50)
      const extending = s.extend(stream, ask(20, 50)) // more than the lease has: reserved on its own
      await s.release(stream)
      await extending
      await s.takeUndelivered() // leases give their unused units back, as close() does
      assert.equal((await other.reserve(ask(50, 50))).ok, true, 'nothing is left held')
    })
  }
})

describe('RedisUsageStore.extend when Redis fails', function () {
  this.timeout(20_000)
  let redis: OwnRedis
  let clients: Redis[]
  let stores: RedisUsageStore[]

  /** Gives up fast and reconnects every 50 ms, as a replica would want it. */
  async function fastStore(options: Omit<RedisUsageStoreOptions, 'client'>) {
    const client = new Redis(redis.url, {
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 1,
      retryStrategy: () => 50,
    })
    client.on('error', () => {})
    clients.push(await connected(client))
    const { store } = boundStore({ client, probeIntervalMs: 100, ...options })
    stores.push(store)
    return store
  }

  beforeEach(async () => {
    redis = await OwnRedis.start()
    clients = []
    stores = []
  })
  afterEach(async () => {
    for (const store of stores) store.close()
    for (const client of clients) client.disconnect()
    await redis.close()
  })

  it('stopped: extends from this process’s memory counting its own hold, then settles the usage once', async () => {
    const keyPrefix = uniquePrefix('extend-down')
    const store = await fastStore({ keyPrefix })
    const stream = await reserved(store, 10, 50)
    await redis.stop()
    const down = await store.extend(stream, ask(30, 50))
    assert.deepEqual([down.ok, down.ok && down.local], [true, true])
    assert.equal(stream.cost, 40)
    // The 10 held in Redis count here too: 40 of 50 are taken.
    assert.equal((await store.extend(stream, ask(11, 50))).ok, false)
    assert.equal((await store.reserve(ask(11, 50))).ok, false)
    await redis.start() // empty: it lost the hold
    await eventually(() => store.mode === 'shared', 'back to shared decisions')
    await store.commit(stream, 37)
    assert.equal(await pendingInRedis(store), 37)
    assert.equal(await store.pendingUnits(), 0, 'nothing left behind in memory')
  })

  it('paused: an extension that timed out is decided here, and cancelled in Redis once it answers', async () => {
    const keyPrefix = uniquePrefix('extend-paused')
    const store = await fastStore({ keyPrefix, commandTimeoutMs: 150 })
    const other = await fastStore({ keyPrefix, commandTimeoutMs: 1_000 })
    const stream = await reserved(store, 10, 50)
    const admin = new Redis(redis.url)
    admin.on('error', () => {})
    clients.push(admin)
    await admin.call('CLIENT', 'PAUSE', '600', 'ALL')
    const paused = await store.extend(stream, ask(20, 50))
    assert.deepEqual([paused.ok, paused.ok && paused.local], [true, true])
    assert.equal(stream.cost, 30)
    await eventually(() => store.mode === 'shared', 'back to shared decisions after the pause')
    // The late extension ran in Redis when the pause ended; its cancellation took it back. So the
    // fleet sees the 10 held in Redis only (the 20 are this process's until the stream settles).
    assert.equal((await other.reserve(ask(40, 50))).ok, true)
    assert.equal((await other.reserve(ask(1, 50))).ok, false)
    await store.commit(stream, 25)
    assert.equal(await pendingInRedis(other), 25)
  })
})
