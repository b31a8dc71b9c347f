import type { StoreContext } from '../enforcement/store.js'
import type { RedisConnection } from './connection.js'
import { tagOf } from './keys.js'

/**
 * Plan changes across the fleet. `refresh()` on one replica writes, next to the customer's shared
 * copies, when its data changed (`P{T}:c:refreshed`, the new snapshot's fetch time). Every
 * replica reads that key with each shared decision, sent on the connection together with the
 * decision's script: one command more, no round trip more. A request served from a lease pays
 * nothing and does not see it: it follows at its next entitlements refresh. A decision taken from
 * a snapshot older than the mark is undone and taken again from new data. The customer's state
 * holds the time too (`rf`), so that reconciliation starts afresh with the new plan.
 *
 * The mark lives as long as a snapshot can be used: after that, no replica holds an older one.
 */
export async function markRefreshed(
  redis: RedisConnection,
  ctx: StoreContext,
  customerId: string,
  at: number,
  common: Record<string, unknown>,
): Promise<void> {
  const tag = tagOf(customerId)
  const key = redis.keys.copy(tag, 'refreshed')
  await Promise.all([
    redis.call(redis.client.set(key, String(at), 'PX', Math.max(1, ctx.maxSnapshotAgeMs)), 'SET'),
    // In the state too, for its reconciliation: the new plan's snapshots start afresh.
    redis.run('planshipMeterMarkRefreshed', tag, { ...common, at }),
  ])
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
