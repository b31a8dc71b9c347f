import assert from 'node:assert/strict'
import { Planship } from '@planship/fetch'
import { type Emulator, type Fixture, startEmulator } from '../../src/emulator/index.js'
import { type Replica, startFleet } from './fleet.js'
import { REDIS_URL, uniquePrefix } from './support.js'

/** Plans of 5 and of 1 000 calls in all (never reset), and 10 renders per 2 s rolling window. */
function fixture(): Fixture {
  return {
    credentials: [{ clientId: 'quota-id', clientSecret: 'quota-secret' }],
    products: [
      {
        slug: 'quota-api',
        levers: [
          { slug: 'calls', type: 'metered', meteringIds: ['call'], period: 'all-time' },
          { slug: 'renders', type: 'metered', meteringIds: ['render'], period: { windowSeconds: 2 } },
        ],
        plans: [
          { slug: 'free', entitlements: { calls: 5, renders: 10 } },
          { slug: 'paid', entitlements: { calls: 1_000, renders: 10 } },
        ],
      },
    ],
    customers: [{ alternativeId: 'quota-customer', subscriptions: [{ product: 'quota-api', plan: 'free' }] }],
  }
}

async function post(replica: Replica, path: string): Promise<number> {
  const response = await fetch(`${replica.url}${path}`, {
    method: 'POST',
    headers: { 'x-customer-id': 'quota-customer' },
  })
  await response.arrayBuffer()
  return response.status
}

describe('quotas customers can see and change, on four replicas (child processes)', function () {
  this.timeout(60_000)
  let emu: Emulator
  let fleet: Replica[] = []

  afterEach(async () => {
    await Promise.all(fleet.map((replica) => replica.kill()))
    fleet = []
    await emu?.close()
  })

  it('an upgrade applies on the very next request on every replica after one refresh()', async () => {
    emu = await startEmulator({ fixture: fixture() })
    // A long cache: without refresh(), the old plan would hold for a minute.
    // The emulator aggregates at once: the meter need not wait for it (its default is 5 s).
    const meter = {
      cache: { ttlMs: 60_000, aggregationLagMs: 0 },
      reporting: { flushIntervalMs: 100, closeTimeoutMs: 2_000 },
    }
    fleet = await startFleet(4, emu, REDIS_URL, { commandTimeoutMs: 1_000, keyPrefix: uniquePrefix('refresh') }, meter)
    let admitted = 0
    for (let i = 0; i < 8; i++) if ((await post(fleet[i % 4]!, '/call')) === 200) admitted++
    assert.equal(admitted, 5)
    for (const replica of fleet) assert.equal(await post(replica, '/call'), 429, 'at the free limit everywhere')

    const planship = new Planship(
      'quota-api',
      { clientId: 'quota-id', clientSecret: 'quota-secret' },
      { baseUrl: emu.url },
    )
    const [subscription] = await planship.listSubscriptions('quota-customer', 'quota-api')
    await planship.changeSubscriptionPlan('quota-customer', subscription!.subscriptionId, 'paid')
    for (const replica of fleet) assert.equal(await post(replica, '/call'), 429, 'cached: the old plan still')

    assert.equal(await post(fleet[0]!, '/refresh'), 200)
    // A burst on a replica that has not heard yet: one read of the new plan, shared by the burst.
    const reads = () => emu.requestCounts()['entitlements'] ?? 0
    const before = reads()
    const burst = await Promise.all(Array.from({ length: 8 }, () => post(fleet[1]!, '/call')))
    assert.deepEqual(burst, Array(8).fill(200), 'the burst gets the new plan')
    assert.equal(reads() - before, 1, 'Planship read once for the burst')
    for (const replica of fleet) assert.equal(await post(replica, '/call'), 200, 'the next request gets the new plan')

    // Every unit delivered, and Planship read again at one moment: status() says it as Planship does.
    for (const replica of fleet) await replica.flush()
    assert.equal(await post(fleet[2]!, '/refresh'), 200)
    const status = await fetch(`${fleet[2]!.url}/usage`, { headers: { 'x-customer-id': 'quota-customer' } })
    const body = (await status.json()) as { levers: Record<string, { limit: number; used: number }> }
    assert.deepEqual([body.levers['calls']!.limit, body.levers['calls']!.used], [1_000, 17])
  })

  it('sends each threshold alert once across the fleet, and again after the window moves on', async () => {
    emu = await startEmulator({ fixture: fixture() })
    const meter = {
      alerts: { thresholds: [0.5, 1] },
      cache: { ttlMs: 200 },
      reporting: { flushIntervalMs: 100, closeTimeoutMs: 2_000 },
    }
    fleet = await startFleet(4, emu, REDIS_URL, { commandTimeoutMs: 1_000, keyPrefix: uniquePrefix('alerts') }, meter)
    const sent = async () => {
      const all = await Promise.all(
        fleet.map(
          async (replica) => (await (await fetch(`${replica.url}/thresholds`)).json()) as { threshold: number }[],
        ),
      )
      return all.flat().map((event) => event.threshold)
    }
    /** The alerts sent once `count` have come (they follow the decisions, after reads), and 300 ms more for any duplicate. */
    const settled = async (count: number) => {
      for (let i = 0; i < 100 && (await sent()).length < count; i++)
        await new Promise((resolve) => setTimeout(resolve, 50))
      await new Promise((resolve) => setTimeout(resolve, 300))
      return (await sent()).sort()
    }
    // 12 renders over the four replicas, at once: 10 admitted, crossing 50 % and 100 %.
    const statuses = await Promise.all(Array.from({ length: 12 }, (_, i) => post(fleet[i % 4]!, '/render')))
    assert.equal(statuses.filter((status) => status === 200).length, 10)
    assert.deepEqual(await settled(2), [0.5, 1])

    // The window (2 s) moves on: a new period, new alerts, once each again. Reported units keep
    // counting for the aggregation lag (5 s) after Planship acknowledged them: wait that out too.
    await new Promise((resolve) => setTimeout(resolve, 6_000))
    // Each replica's cached entitlements are stale by now and say 0 left: a denial waits for
    // the read they started, so the first request on every replica is admitted.
    let admitted = 0
    for (let i = 0; i < 12; i++) if ((await post(fleet[i % 4]!, '/render')) === 200) admitted++
    assert.equal(admitted, 10)
    assert.deepEqual(await settled(4), [0.5, 0.5, 1, 1])
  })
})
