import assert from 'node:assert/strict'
import type { Redis } from 'ioredis'
import type { StoreContext } from '../../src/enforcement/store.js'
import { RedisConnection } from '../../src/redis/connection.js'
import { sharedRead } from '../../src/redis/shared-read.js'
import { createLog } from '../../src/log.js'
import { manualClock, recordingLogger } from '../helpers/harness.js'
import { redisClient, uniquePrefix } from './support.js'

/** A Planship read that answers when the test says, counting how many were made. */
function slowRead(value: string) {
  let finish!: () => void
  let markStarted!: () => void
  const done = new Promise<void>((resolve) => (finish = resolve))
  const started = new Promise<void>((resolve) => (markStarted = resolve))
  const read = {
    calls: 0,
    started,
    finish,
    load: async () => {
      read.calls++
      markStarted()
      await done
      return value
    },
  }
  return read
}

describe('sharedRead (one Planship read for the fleet)', () => {
  let client: Redis
  let redis: RedisConnection
  /** Resolves once `count` lock attempts (`SET NX`) have been answered. */
  let lockAttempts: (count: number) => Promise<void>
  const clock = manualClock()
  const ctx: StoreContext = {
    clock,
    aggregationLagMs: 0,
    maxSnapshotAgeMs: 60_000,
    maxCustomers: 1_000,
    maxPendingKeys: 1_000,
    delivery: 'at-least-once',
    planshipTimeoutMs: 2_000,
    log: createLog(recordingLogger(), undefined, clock),
    emit: undefined,
  }
  const key = { customerId: 'cus_1', name: 'entitlements' }

  beforeEach(async () => {
    client = redisClient()
    await new Promise((resolve) => client.once('ready', resolve))
    let attempts = 0
    const waiting: { count: number; resolve: () => void }[] = []
    const record = (operation: string) => {
      if (operation !== 'SET NX') return
      attempts++
      for (const waiter of waiting) if (attempts >= waiter.count) waiter.resolve()
    }
    lockAttempts = (count) =>
      attempts >= count ? Promise.resolve() : new Promise((resolve) => waiting.push({ count, resolve }))
    redis = new RedisConnection(client, uniquePrefix('shared-read'), 1_000, 1_000, record)
  })
  afterEach(() => client.disconnect())

  it('a waiter takes the copy of the read in flight, even when it lands later than ttlMs after the asking', async () => {
    const first = slowRead('first')
    let ownReads = 0
    const second = async () => {
      ownReads++
      return 'its own read'
    }
    const owner = sharedRead(redis, ctx, 'replica-a', key, 100, first.load)
    await first.started
    const waiter = sharedRead(redis, ctx, 'replica-b', key, 100, second)
    await lockAttempts(2) // the waiter found the lock taken: it waits for the copy
    // A slow read under load: it answers a second after it began, ten times the ttl.
    clock.advance(1_000)
    first.finish()
    const [mine, theirs] = await Promise.all([owner, waiter])
    assert.equal(theirs.value, 'first', 'the copy, not a read of its own after waiting out the lock')
    assert.equal(theirs.fetchedAt, mine.fetchedAt)
    assert.equal(ownReads, 0)
  })

  it('with ttlMs 0 (a refresh) reads Planship itself, never taking the copy of a read begun earlier', async () => {
    const first = slowRead('before the change')
    const owner = sharedRead(redis, ctx, 'replica-a', key, 30_000, first.load)
    await first.started
    const refreshed = await sharedRead(redis, ctx, 'replica-b', key, 0, async () => 'after the change')
    assert.equal(refreshed.value, 'after the change')
    first.finish()
    await owner
  })
})
