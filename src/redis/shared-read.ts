import { setTimeout as sleep } from 'node:timers/promises'
import type { SharedReadKey, SharedSnapshot, StoreContext } from '../enforcement/store.js'
import type { RedisConnection } from './connection.js'
import { tagOf } from './keys.js'

/** How often a process waiting for another one's Planship read looks for its copy. */
const POLL_MS = 25

/**
 * Single-flight Planship reads across the fleet: a fresh copy in Redis is used as it is (with
 * the time it was fetched, so reconciliation compares the right snapshots); otherwise one process
 * takes a short lock (`SET NX PX`) and reads Planship, and the others wait for its copy, reading
 * Planship themselves only if it does not come within the lock. Redis failing never blocks a
 * read: the process then reads for itself.
 */
export async function sharedRead<V>(
  redis: RedisConnection,
  ctx: StoreContext,
  owner: string,
  key: SharedReadKey,
  ttlMs: number,
  load: () => Promise<V>,
): Promise<SharedSnapshot<V>> {
  const { clock } = ctx
  const copyKey = redis.keys.copy(tagOf(key.customerId), key.name)
  const lockMs = ctx.planshipTimeoutMs + 1_000
  // Fresh as of the asking, not of each look: a waiter's copy may come later than ttlMs after a
  // slow read began (a short ttl under load), and waiting the whole lock for a younger one let a
  // burst's decisions fall out of the window they were made for.
  const askedAt = clock.now()
  const fresh = (copy: SharedSnapshot<V> | undefined): boolean => copy !== undefined && askedAt - copy.fetchedAt < ttlMs
  const read = async (): Promise<SharedSnapshot<V> | undefined> => {
    const raw = await redis.call(redis.client.get(copyKey), 'GET')
    return raw === null ? undefined : (JSON.parse(raw) as SharedSnapshot<V>)
  }
  const own = async (locked: boolean): Promise<SharedSnapshot<V>> => {
    const fetchedAt = clock.now()
    let value: V
    try {
      value = await load()
    } catch (error) {
      // Failed reads are not shared: the others may try for themselves at once.
      if (locked) await redis.call(redis.client.del(`${copyKey}:lock`), 'DEL').catch(() => {})
      throw error
    }
    const snapshot = { value, fetchedAt, receivedAt: clock.now() }
    const writes = redis.client.multi().set(copyKey, JSON.stringify(snapshot), 'PX', Math.max(1, ctx.maxSnapshotAgeMs))
    if (locked) writes.del(`${copyKey}:lock`)
    await redis.call(writes.exec(), 'SET').catch(() => {})
    return snapshot
  }
  // A read that must come from Planship itself (a refresh): no copy, not even one in flight, will do.
  if (ttlMs <= 0) return own(false)
  let copy: SharedSnapshot<V> | undefined
  let lock: 'won' | 'taken' | 'none' = 'none'
  try {
    if (redis.ready()) {
      copy = await read()
      if (fresh(copy)) return copy!
      const set = await redis.call(redis.client.set(`${copyKey}:lock`, owner, 'PX', lockMs, 'NX'), 'SET NX')
      lock = set === 'OK' ? 'won' : 'taken'
    }
  } catch {
    // Redis failing never blocks a read: this process reads for itself.
  }
  return lock === 'taken' ? waitForCopy() : own(lock === 'won')

  /** Another process is reading Planship: its copy will do, if it comes within the lock. */
  async function waitForCopy(): Promise<SharedSnapshot<V>> {
    const until = performance.now() + lockMs
    while (performance.now() < until) {
      await sleep(POLL_MS)
      const next = await read().catch(() => undefined)
      if (fresh(next) && next!.fetchedAt > (copy?.fetchedAt ?? -Infinity)) return next!
    }
    return own(false)
  }
}
