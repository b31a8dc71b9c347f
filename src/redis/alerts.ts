import type { RedisConnection } from './connection.js'
import { tagOf } from './keys.js'

/**
 * Claims a threshold alert for the whole fleet: `SET NX` on a key (in the customer's slot) that
 * expires with the alert's period, so exactly one replica sends it per period. When Redis does
 * not answer, the alert is not sent now (it is tried again at the next crossing seen): a
 * duplicate alert is worse than a late one.
 */
export async function claimOnce(redis: RedisConnection, customerId: string, id: string, ttlMs: number) {
  const key = redis.keys.copy(tagOf(customerId), `alert:${id}`)
  const set = await redis.call(redis.client.set(key, '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX'), 'SET NX')
  return set === 'OK'
}
