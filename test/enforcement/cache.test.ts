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
})
