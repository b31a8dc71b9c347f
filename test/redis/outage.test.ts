import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import Koa from 'koa'
import request from 'supertest'
import { createMeter, type Meter, type MeterEvent, type PlanshipState } from '../../src/index.js'
import { RedisUsageStore } from '../../src/redis/index.js'
import { eventually, type Harness, startHarness } from '../helpers/harness.js'
import { connected, meteredApp, OwnRedis } from './support.js'

/** A client that gives up fast and reconnects every 50 ms, as a replica would want it. */
function fastClient(url: string): Redis {
  const client = new Redis(url, {
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 1,
    retryStrategy: () => 50,
  })
  client.on('error', () => {}) // the store notices by itself; ioredis would print every reconnect failure
  return client
}

describe('RedisUsageStore when Redis fails', function () {
  this.timeout(20_000)
  let redis: OwnRedis
  let client: Redis
  let h: Harness
  let meter: Meter
  let events: MeterEvent[]

  beforeEach(async () => {
    redis = await OwnRedis.start()
    client = await connected(fastClient(redis.url))
    h = await startHarness()
    events = []
    meter = createMeter({
      ...h.options,
      // 50 ms, and once 250 ms, could be missed by a Redis descheduled on a loaded 2-core test
      // machine: a spurious local decision. The pause lasts twice as long.
      store: new RedisUsageStore({ client, commandTimeoutMs: 750, probeIntervalMs: 100 }),
      onEvent: (event) => events.push(event),
    })
  })

  afterEach(async () => {
    await meter.close()
    client.disconnect()
    await h.close()
    await redis.close()
  })

  const app = () => meteredApp(meter)

  /** `n` requests of pro-customer; the statuses and the sources of their decisions. */
  async function calls(callback: ReturnType<typeof app>, n: number) {
    const from = events.length
    const statuses = await Promise.all(
      Array.from(
        { length: n },
        async () => (await request(callback).post('/').set('x-customer-id', 'pro-customer')).status,
      ),
    )
    const sources = events
      .slice(from)
      .flatMap((event) => (event.type === 'decision' && event.kind === 'consume' ? [event.source] : []))
    return { statuses, sources: [...new Set(sources)] }
  }

  const storeEvents = () => events.flatMap((event) => (event.type === 'store' ? [event.state] : []))

  it('stopped, then restarted empty: decides locally meanwhile, then moves that usage to Redis, nothing lost or doubled', async () => {
    const callback = app()
    const up = await calls(callback, 5)
    assert.deepEqual(up.statuses, [200, 200, 200, 200, 200])
    assert.deepEqual(up.sources, ['fresh'])
    // Delivered now: a Redis that restarts without persistence loses the outbox it held (see README).
    await meter.flush()

    await redis.stop()
    const down = await calls(callback, 6)
    assert.deepEqual(down.statuses, [200, 200, 200, 200, 200, 200])
    assert.deepEqual(down.sources, ['local'])
    assert.deepEqual(storeEvents(), ['local'], 'one event for the change')
    assert.equal(h.logger.lines.filter((line) => line.includes('Redis is not answering')).length, 1)

    await redis.start() // empty: it keeps nothing on disk
    await eventually(() => storeEvents().length === 2, 'back to shared decisions')
    assert.deepEqual(storeEvents(), ['local', 'shared'])
    const back = await calls(callback, 4)
    assert.deepEqual(back.sources, ['fresh'])

    await meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer' }), 15)
  })

  it('a request admitted in Redis that finishes while Redis is down: its usage is kept and counted once', async () => {
    let finish = () => {}
    const finished = new Promise<void>((resolve) => (finish = resolve))
    const koa = new Koa<PlanshipState>()
    koa.use(meter.consume('api-call'))
    koa.use(async (ctx) => {
      await finished
      ctx.body = 'ok'
    })
    const pending = request(koa.callback())
      .post('/')
      .set('x-customer-id', 'pro-customer')
      .then((r) => r.status)
    await eventually(() => events.some((event) => event.type === 'decision'), 'admitted')
    await redis.stop()
    finish()
    assert.equal(await pending, 200)
    await eventually(() => storeEvents().includes('local'), 'noticed the outage')
    await redis.start()
    await eventually(() => storeEvents().length === 2, 'back to shared decisions')
    await meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer' }), 1)
  })

  it('paused (CLIENT PAUSE): decides locally within the deadline, and counts nothing twice once it answers', async () => {
    const callback = app()
    await calls(callback, 3)
    const admin = new Redis(redis.url)
    await admin.call('CLIENT', 'PAUSE', '1500', 'ALL')
    const paused = await calls(callback, 8)
    assert.deepEqual(paused.statuses, Array(8).fill(200))
    assert.ok(paused.sources.includes('local'), paused.sources.join())
    await eventually(() => storeEvents().length === 2, 'back to shared decisions after the pause')
    // Commands that timed out ran when the pause ended; their replays must change nothing.
    await sleep(300)
    await meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer' }), 11)
    admin.disconnect()
  })
})
