import type { LimitRoom, ReserveRequest } from '../enforcement/store.js'
import type { RedisConnection } from './connection.js'
import { tagOf } from './keys.js'
import { checkArgs, PRELUDE, RECONCILE } from './lua.js'

/**
 * What the fleet's admission sees for each limit, reserving nothing: the reservation script's
 * reconciliation without its writes (nothing is saved, so the state is unchanged). Sent as EVAL:
 * `status()` is not on the request path of metered routes, and this keeps the script out of the
 * set every replica loads.
 */
const AVAILABLE = `${PRELUDE}${RECONCILE}
if S == nil then S = fresh() end
sweep()
local out = {}
for _, lim in ipairs(A.lims) do
  lim.set = {}
  for _, m in ipairs(lim.ids) do lim.set[m] = true end
  local v = reconcile(lim)
  local unseen = localUsage(lim, v)
  out[#out + 1] = { lever = lim.l, left = v.rem - unseen, unseen = unseen }
end
return cjson.encode(out)
`

export async function available(
  redis: RedisConnection,
  request: ReserveRequest,
  common: Record<string, unknown>,
): Promise<LimitRoom[]> {
  const args = { ...checkArgs(request), ...common }
  const key = redis.keys.customer(tagOf(request.customerId))
  const answer = await redis.call(redis.client.eval(AVAILABLE, 1, key, JSON.stringify(args)), 'EVAL status')
  const rooms = JSON.parse(answer as string) as LimitRoom[] | Record<string, never>
  return Array.isArray(rooms) ? rooms : [] // cjson writes an empty table as {}
}
