import assert from 'node:assert/strict'
import { CircuitBreaker } from '../../src/enforcement/backoff.js'
import { RefreshingCache } from '../../src/enforcement/cache.js'
import { PlanshipMeterError } from '../../src/errors.js'
import { manualClock } from '../helpers/harness.js'

describe('RefreshingCache', () => {
  it('a recovery probe whose answer is dropped (the customer refreshed meanwhile) still closes the circuit', async () => {
    const clock = manualClock()
    const breaker = new CircuitBreaker(clock)
    let planshipUp = false
    let answer: (() => void) | undefined
    const cache = new RefreshingCache<string>({
      max: 100,
      ttlMs: 30_000,
      maxStaleMs: 300_000,
      clock,
      breaker,
      load: async (key) => {
        if (!planshipUp) throw new PlanshipMeterError('PLANSHIP_UNREACHABLE', 'Planship is down')
        await new Promise<void>((resolve) => (answer = resolve))
        return key
      },
      onRefreshError: () => {},
    })
    await assert.rejects(cache.get('a'), { code: 'PLANSHIP_UNREACHABLE' }) // the circuit opens
    planshipUp = true
    clock.advance(60_000) // past the backoff: the next read is the one probe
    const probe = cache.get('a')
    await assert.rejects(cache.reload('a')) // refused while the probe runs; drops the probe's answer
    answer!()
    assert.equal((await probe).snapshot.value, 'a')
    const next = cache.get('b') // Planship is back: reads go through again
    answer!()
    assert.equal((await next).snapshot.value, 'b')
  })

  function countingCache(clock: ReturnType<typeof manualClock>, max: number) {
    const loads: string[] = []
    const cache = new RefreshingCache<string>({
      max,
      ttlMs: 30_000,
      maxStaleMs: 300_000,
      clock,
      breaker: new CircuitBreaker(clock),
      load: async (key) => {
        loads.push(key)
        return key
      },
      onRefreshError: () => {},
    })
    return { cache, loads }
  }

  it('evicts the least recently used customer: a lookup counts as use once a second at most', async () => {
    const clock = manualClock()
    const { cache, loads } = countingCache(clock, 2)
    await cache.get('a')
    await cache.get('b')
    clock.advance(1_000)
    assert.ok(cache.peek('a')) // used again, a second after it was read: b is now the oldest
    await cache.get('c')
    assert.ok(cache.peek('a'), 'a was used more recently than b')
    assert.equal(cache.peek('b'), undefined)
    clock.advance(10)
    assert.ok(cache.peek('c')) // within a second of its read: its place is not moved again
    await cache.get('b') // evicts a: used a second ago, while c was read after it
    assert.equal(cache.peek('a'), undefined)
    assert.deepEqual(loads, ['a', 'b', 'c', 'b'])
  })

  it('keeps what is derived from a snapshot with it, for its fresh and stale answers, until a new one', async () => {
    const clock = manualClock()
    const { cache } = countingCache(clock, 10)
    const cold = await cache.get('a')
    cold.derived.set('plan', 1)
    assert.equal(cache.peek('a')?.derived.get('plan'), 1)
    clock.advance(30_000) // stale now: the same snapshot, the same derived data; a refresh starts
    const stale = cache.peek('a')
    assert.equal(stale?.freshness, 'stale')
    assert.equal(stale?.derived.get('plan'), 1)
    await cache.refresh('a')
    assert.equal(cache.peek('a')?.derived.get('plan'), undefined, 'a new snapshot derives anew')
  })
})
