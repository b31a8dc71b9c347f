import type { StoreContext } from '../enforcement/store.js'
import type { RedisConnection } from './connection.js'
import { tagOf } from './keys.js'

/**
 * Plan changes across the fleet. `refresh()` on one replica writes, next to the customer's shared
 * copies, when its data changed (`P{T}:c:refreshed`, the new snapshot's fetch time). Every
 * replica reads that key with each shared decision, sent on the connection together with the
 * decision's script: one command more, no round trip more, and none at all on a warm lease. A
 * decision taken from a snapshot older than the mark is undone and taken again from new data.
 *
 * The mark lives as long as a snapshot can be used: after that, no replica holds an older one.
 */
export function markRefreshed(redis: RedisConnection, ctx: StoreContext, customerId: string, at: number) {
  const key = redis.keys.copy(tagOf(customerId), 'refreshed')
  return redis.call(redis.client.set(key, String(at), 'PX', Math.max(1, ctx.maxSnapshotAgeMs)), 'SET')
}

/**
 * When the customer's data last changed, if it did within a snapshot's life; sent at once, so
 * that it shares the round trip of the command sent right after it. Never fails: a decision
 * does not wait on it longer than on its own script, and a lost read is caught by the next one.
 */
export function readRefreshed(redis: RedisConnection, tag: string): Promise<number | undefined> {
  return redis.call(redis.client.get(redis.keys.copy(tag, 'refreshed')), 'GET').then(
    (raw) => (raw === null ? undefined : Number(raw)),
    () => undefined,
  )
}
