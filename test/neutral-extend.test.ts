import assert from 'node:assert/strict'
import { createMeter, MemoryUsageStore, type MeterCore, type Reservation, type ReserveRequest } from '../src/index.js'
import { eachHarness, type Harness, startHarness } from './helpers/harness.js'
import { tokensFixture } from './helpers/streams.js'

/** A long job: holds 10 units, extends by 10 while it can, then bills what it did. */
async function longJob(meter: MeterCore, customerId: string): Promise<{ allowed: boolean; done: number }> {
  const job = await meter.reserve(customerId, 'tokens', { cost: 10 })
  if (!job.allowed) return { allowed: false, done: 0 }
  let done = 0
  do done += 10
  while (done < 1_000 && (await job.extend(10)))
  assert.equal(job.reserved, done)
  await job.commit(done)
  return { allowed: true, done }
}

describe('the framework-neutral API: reservations that grow', () => {
  const harness = eachHarness((onEvent) =>
    startHarness({ emulator: { fixture: tokensFixture }, meter: { onEvent } }),
  ) as (() => Harness) & { events: import('../src/index.js').MeterEvent[] }
  const billed = async (h: Harness, customerId: string) => {
    await h.meter.flush()
    return h.emu.recordedUsage({ customerId, meteringId: 'tokens' })
  }

  it('a reservation extended until false bills exactly the quota', async () => {
    const h = harness()
    h.emu.createCustomer('job', 'basic')
    assert.deepEqual(await longJob(h.meter, 'job'), { allowed: true, done: 100 })
    assert.equal(await billed(h, 'job'), 100)
    const next = await h.meter.reserve('job', 'tokens', { cost: 1 })
    assert.equal(next.allowed, false)
  })

  it('three concurrent jobs of one customer together get exactly the quota', async () => {
    const h = harness()
    h.emu.createCustomer('jobs', 'basic')
    const jobs = await Promise.all([0, 1, 2].map(() => longJob(h.meter, 'jobs')))
    assert.equal(
      jobs.reduce((sum, job) => sum + job.done, 0),
      100,
    )
    assert.equal(await billed(h, 'jobs'), 100)
  })

  it('an extension that does not fit reserves nothing: a smaller one still does', async () => {
    const h = harness()
    h.emu.createCustomer('exact', 'basic')
    const job = await h.meter.reserve('exact', 'tokens', { cost: 95 })
    assert.ok(job.allowed)
    assert.equal(await job.extend(10), false)
    assert.equal(job.reserved, 95)
    assert.equal(await job.extend(5), true)
    assert.equal(job.reserved, 100)
    assert.equal(await job.extend(1), false)
    await job.commit()
    assert.equal(await billed(h, 'exact'), 100)
    const denied = harness.events.filter((event) => event.type === 'denial')
    assert.equal(denied.length, 2, 'each refused extension is a quota denial, like a refused admission')
  })

  it('extend() refuses once the reservation is settled, and rejects bad units with a TypeError', async () => {
    const h = harness()
    h.emu.createCustomer('settled', 'basic')
    const job = await h.meter.reserve('settled', 'tokens', { cost: 10 })
    assert.ok(job.allowed)
    await assert.rejects(job.extend(-1), TypeError)
    await assert.rejects(job.extend(1.5), TypeError)
    await assert.rejects(job.extend(Number.NaN), TypeError)
    await job.release()
    assert.equal(await job.extend(10), false)
    assert.equal(job.reserved, 10, 'nothing more was reserved')
    assert.equal(await billed(h, 'settled'), 0)
    // All 100 are still there.
    const whole = await h.meter.reserve('settled', 'tokens', { cost: 100 })
    assert.ok(whole.allowed)
    await whole.release()
  })

  it('in shadow mode, extend() goes past the quota, records what enforcement would have decided, and bills it', async () => {
    const h = harness()
    h.emu.createCustomer('shadowed', 'basic')
    const job = await h.meter.reserve('shadowed', 'tokens', { cost: 90, mode: 'shadow' })
    assert.ok(job.allowed)
    assert.equal(await job.extend(30), true)
    assert.equal(job.reserved, 120)
    await job.commit()
    assert.equal(await billed(h, 'shadowed'), 120)
    const shadowDenial = harness.events.find((event) => event.type === 'denial' && event.shadow === true)
    assert.ok(shadowDenial, 'the refusal enforcement would have made is an event')
  })

  it('usage committed above the reservation is billed as measured, with an overage event', async () => {
    const h = harness()
    h.emu.createCustomer('over', 'basic')
    const job = await h.meter.reserve('over', 'tokens', { cost: 5 })
    assert.ok(job.allowed)
    await job.commit(8)
    assert.equal(await billed(h, 'over'), 8)
    const overage = harness.events.find((event) => event.type === 'overage')
    assert.deepEqual(overage, {
      type: 'overage',
      customerId: 'over',
      meteringId: 'tokens',
      reserved: 5,
      usage: 8,
      over: 3,
    })
  })
})

describe('extend() on a store that fails', () => {
  it('rejects that extend() with the store error, leaves no unhandled rejection, and still settles', async () => {
    const h = await startHarness({ emulator: { fixture: tokensFixture } })
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      h.emu.createCustomer('broken', 'basic')
      const config = { aggregationLagMs: 5_000, maxSnapshotAgeMs: 330_000, maxCustomers: 100, maxPendingKeys: 100 }
      /** A store whose extensions fail, as a shared one can (a user's own UsageStore). */
      class FailingExtensions extends MemoryUsageStore {
        override extend(_reservation: Reservation, _request: ReserveRequest): never {
          throw new Error('store unreachable')
        }
      }
      /** The same, answering later, as a shared store does. */
      class FailingLater extends MemoryUsageStore {
        // @ts-expect-error -- a store may answer with a promise; this one's rejects
        override async extend(): Promise<never> {
          throw new Error('store unreachable later')
        }
      }
      const store = new FailingExtensions({ ...config, clock: { now: () => Date.now() } })
      const meter = createMeter({ ...h.options, store })
      const job = await meter.reserve('broken', 'tokens', { cost: 10 })
      assert.ok(job.allowed)
      await assert.rejects(job.extend(10), /store unreachable/)
      await job.commit()
      await meter.close()
      const later = createMeter({
        ...h.options,
        store: new FailingLater({ ...config, clock: { now: () => Date.now() } }),
      })
      const second = await later.reserve('broken', 'tokens', { cost: 5 })
      assert.ok(second.allowed)
      await assert.rejects(second.extend(10), /store unreachable later/)
      await second.commit()
      await later.close()
      await new Promise((resolve) => setImmediate(resolve))
      assert.deepEqual(unhandled, [])
      assert.equal(h.emu.recordedUsage({ customerId: 'broken', meteringId: 'tokens' }), 15)
    } finally {
      process.off('unhandledRejection', onUnhandled)
      await h.close()
    }
  })
})
