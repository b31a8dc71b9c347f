import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import { Planship } from '@planship/fetch'
import request from 'supertest'
import { createMeter } from '../../src/index.js'
import { RedisUsageStore } from '../../src/redis/index.js'
import { type Harness, startHarness } from '../helpers/harness.js'
import { boundStore, commitUnits, connected, meteredApp, redisClient, uniquePrefix } from './support.js'

describe('RedisUsageStore', () => {
  let client: Redis
  let h: Harness

  before(async () => {
    client = await connected(redisClient())
    h = await startHarness()
  })
  after(async () => {
    await h.close()
    await client.quit()
  })

  it('refuses invalid options with a TypeError naming the option', () => {
    assert.throws(() => new RedisUsageStore({} as never), { name: 'TypeError', message: /`client`/ })
    assert.throws(() => new RedisUsageStore({ client: {} as never }), { name: 'TypeError', message: /`client`/ })
    for (const option of [
      'commandTimeoutMs',
      'reservationTtlMs',
      'sendLeaseMs',
      'probeIntervalMs',
      'settleIntervalMs',
    ]) {
      assert.throws(() => new RedisUsageStore({ client, [option]: 0 }), {
        name: 'TypeError',
        message: new RegExp(`\`${option}\` must be a positive integer`),
      })
    }
    assert.throws(() => new RedisUsageStore({ client, keyPrefix: 3 as never }), { message: /`keyPrefix`/ })
    assert.throws(() => new RedisUsageStore({ client, leaseUnits: -1 }), {
      name: 'TypeError',
      message: /`leaseUnits` must be a non-negative integer/,
    })
    assert.throws(() => new RedisUsageStore({ client, settleIntervalMs: 1.5 }), { message: /`settleIntervalMs`/ })
  })

  it('says so when used before createMeter bound it', async () => {
    const store = new RedisUsageStore({ client })
    await assert.rejects(
      Promise.resolve().then(() =>
        store.reserve({ customerId: 'c', meteringId: 'm', bucket: undefined, cost: 1, limits: [], snapshotAt: 0 }),
      ),
      { code: 'STORE_NOT_BOUND' },
    )
  })

  it('keeps every key of a customer under one hash tag without the id in clear, braces included', async () => {
    const keyPrefix = uniquePrefix('keys')
    const { store } = boundStore({ client, keyPrefix })
    const customerId = 'stripe:{cus_1}@example.com'
    await commitUnits(store, customerId, 1)
    const keys = await client.keys(`${keyPrefix}*`)
    const customerKeys = keys.filter((key) => !key.includes('{ix}'))
    assert.equal(customerKeys.length, 1)
    assert.match(customerKeys[0]!, /^pmtest:keys:[0-9a-f]+:\{[A-Za-z0-9_-]{27}\}:u$/)
    assert.ok(!customerKeys[0]!.includes('cus_1'))
    const reports = await store.takePending()
    assert.deepEqual(
      reports.map((r) => [r.customerId, r.usage]),
      [[customerId, 1]],
    )
    store.close()
  })

  for (const delivery of ['at-least-once', 'at-most-once'] as const) {
    it(`takes over usage whose sender died once its lease ends, counted exactly (${delivery})`, async () => {
      const keyPrefix = uniquePrefix(`takeover-${delivery}`)
      const options = { client, keyPrefix, sendLeaseMs: 2_000 } // outlasts a stall between the two takes
      const dead = boundStore(options, { delivery }).store
      const survivor = boundStore(options, { delivery }).store
      await commitUnits(dead, 'c', 5)
      assert.equal((await dead.takePending()).length, 1, 'claimed, and never settled: the sender "dies"')
      assert.deepEqual(await survivor.takePending(), [], 'the lease holds')
      await sleep(2_100)
      const taken = await survivor.takePending()
      const fleet = survivor.fleetDeliveryStats()
      if (delivery === 'at-least-once') {
        assert.deepEqual(
          taken.map((r) => r.usage),
          [5],
        )
        assert.equal(fleet?.possiblyDuplicatedUnits, 5)
      } else {
        assert.deepEqual(taken, [])
        assert.equal(fleet?.possiblyLostUnits, 5)
      }
      dead.close()
      survivor.close()
    })
  }

  it('after a downgrade and refresh() on one replica, usage not yet in Planship’s numbers still counts on every replica', async () => {
    // Planship aggregates 10 s late here; the meters allow for 15 s.
    const late = await startHarness({
      emulator: { aggregationLagMs: 10_000 },
      meter: { cache: { aggregationLagMs: 15_000 } },
    })
    const keyPrefix = uniquePrefix('downgrade')
    const [a, b] = [0, 1].map(() => createMeter({ ...late.options, store: new RedisUsageStore({ client, keyPrefix }) }))
    try {
      const customer = 'redis-downgrader@example.com'
      late.emu.createCustomer(customer, 'pro')
      const used = await b!.reserve(customer, 'api-call', { cost: 10 })
      assert.ok(used.allowed)
      await used.commit()
      await b!.flush() // acknowledged, not in Planship's numbers for 10 s
      const looked = await a!.reserve(customer, 'api-call') // replica a reconciles with the pro plan too
      assert.ok(looked.allowed)
      await looked.release()
      const { clientId, clientSecret, productSlug, url } = late.emu
      const planship = new Planship(productSlug, { clientId, clientSecret }, { baseUrl: url })
      const [subscription] = await planship.listSubscriptions(customer, productSlug)
      await planship.changeSubscriptionPlan(customer, subscription!.subscriptionId, 'free')
      await a!.refresh(customer)
      // Free has 100 calls and 10 are used, on either replica: the fall from 10 000 is the plan's.
      for (const meter of [b!, a!]) {
        assert.equal((await meter.reserve(customer, 'api-call', { cost: 91 })).allowed, false)
        const rest = await meter.reserve(customer, 'api-call', { cost: 90 })
        assert.ok(rest.allowed)
        await rest.release()
      }
    } finally {
      await Promise.all([a!.close(), b!.close()])
      await late.close()
    }
  })

  it('two meters sharing one Redis admit exactly the allowance under 60 concurrent requests', async () => {
    const keyPrefix = uniquePrefix('twometers')
    const meters = [0, 1].map(() => createMeter({ ...h.options, store: new RedisUsageStore({ client, keyPrefix }) }))
    const callbacks = meters.map((meter) => meteredApp(meter))
    // free-customer: 100 api calls.
    const statuses = await Promise.all(
      Array.from({ length: 130 }, async (_, i) => {
        const response = await request(callbacks[i % 2]!)
          .post('/')
          .set('x-customer-id', 'free-customer')
        return response.status
      }),
    )
    assert.equal(statuses.filter((status) => status === 200).length, 100)
    await meters[1]!.flush() // delivers the other meter's usage too
    assert.equal(h.emu.recordedUsage({ customerId: 'free-customer' }), 100)
    assert.equal(meters[1]!.deliveryStats().fleet?.reportedUnits, 100)
    for (const meter of meters) await meter.close()
    assert.equal(client.status, 'ready', 'meter.close() leaves the user’s client open')
    assert.equal(await client.ping(), 'PONG')
  })
})
