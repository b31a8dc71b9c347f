import type { ReserveRequest } from '../enforcement/store.js'

/**
 * The Lua scripts of the Redis store. Each touches exactly one key, the customer's state (see
 * `keys.ts`), so each runs atomically on the one node that owns the customer's hash slot.
 *
 * The state is one msgpack value per customer, and the functions below port the reconciliation
 * of `MemoryUsageStore` line by line (same names where possible): the fleet then gets exactly
 * the decisions one process would take, with every replica's usage in one place. Times: `A.now`
 * is the meter's clock (snapshots, acknowledgements: the same clock as in one process);
 * `rnow` is Redis's own (reservation and send-lease expiry: one clock judges every replica).
 */
export const PRELUDE = `
local key = KEYS[1]
local A = cjson.decode(ARGV[1])
local t = redis.call('TIME')
local rnow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local raw = redis.call('GET', key)
local S = nil
if raw then S = cmsgpack.unpack(raw) end

local function fresh()
  return { cid = A.cid, ep = A.epoch, cells = {}, acked = {}, nq = 0, views = {}, res = {}, exp = {}, imp = {} }
end

local function cellId(m, b)
  if b == nil then return m end
  return m .. '\\0' .. b
end

local function cellOf(id, m, b)
  local c = S.cells[id]
  if c == nil then
    c = { m = m, b = b, r = 0, p = 0, s = 0, ss = 0, f = 0, ra = 0 }
    S.cells[id] = c
  end
  return c
end

local function dropIfEmpty(id)
  local c = S.cells[id]
  if c ~= nil and c.r == 0 and c.p == 0 and c.s == 0 and c.tk == nil then S.cells[id] = nil end
end

local function busy()
  for _, c in pairs(S.cells) do
    if c.p > 0 or c.s > 0 then return true end
  end
  return false
end

-- Reservations of a replica that died (or of a request that ran past the TTL) give their units back.
local function sweep()
  for id, r in pairs(S.res) do
    if r.e <= rnow then
      local c = S.cells[r.k]
      if c ~= nil then
        c.r = c.r - r.c
        dropIfEmpty(r.k)
      end
      S.res[id] = nil
      S.exp[id] = rnow
    end
  end
  for id, at in pairs(S.exp) do
    if at < rnow - A.keepOps then S.exp[id] = nil end
  end
  for id, at in pairs(S.imp) do
    if at < rnow - A.keepOps then S.imp[id] = nil end
  end
  S.gs = S.gs or {}
  for id, g in pairs(S.gs) do
    if g.at < rnow - A.keepOps then S.gs[id] = nil end
  end
  local before = A.now - A.lag - A.keep
  local drop = 0
  while drop < #S.acked and S.acked[drop + 1].at <= before do drop = drop + 1 end
  if drop > 0 then
    local kept = {}
    for i = drop + 1, #S.acked do kept[#kept + 1] = S.acked[i] end
    S.acked = kept
  end
end

-- Pending or claimed usage never expires; an idle state lives as long as a snapshot can need it.
local function save()
  if next(S.cells) == nil and next(S.acked) == nil and next(S.res) == nil and next(S.exp) == nil
    and next(S.imp) == nil and next(S.gs) == nil then
    redis.call('DEL', key)
    return
  end
  redis.call('SET', key, cmsgpack.pack(S))
  if not busy() then redis.call('PEXPIRE', key, A.idleTtl) end
end
`

/** The reconciliation of acknowledged usage with snapshots: `memory-store.ts`, in Lua. */
export const RECONCILE = `
local function feeds(lim, m, b, bucket)
  return lim.set[m] == true and ((not lim.pb) or b == bucket)
end

local function firstSeq()
  if #S.acked > 0 then return S.acked[1].q end
  return S.nq
end

-- 1-based index in S.acked of the view's cursor (acknowledgements pruned since count as absorbed).
local function cursorIndex(v)
  local first = firstSeq()
  if v.cur < first then
    v.cur = first
    v.par = 0
  end
  return v.cur - first + 1
end

local function absorb(v, lim, bucket, visibleBefore)
  local acked = S.acked
  local i = cursorIndex(v)
  while i <= #acked do
    local rec = acked[i]
    if feeds(lim, rec.m, rec.b, bucket) and rec.at <= visibleBefore then
      -- In Planship's numbers by now: it pays its share of the fall first (as the memory store).
      v.cr = v.cr - math.min(v.cr, rec.u - v.par)
      v.par = 0
    elseif feeds(lim, rec.m, rec.b, bucket) then
      if v.cr <= 0 or rec.sa >= v.ra then break end
      local take = math.min(v.cr, rec.u - v.par)
      v.cr = v.cr - take
      v.par = v.par + take
      if v.par < rec.u then break end
      v.par = 0
    end
    i = i + 1
  end
  if acked[i] ~= nil then v.cur = acked[i].q else v.cur = S.nq end
  -- What is left over can only be reports still in flight that Planship already applied.
  local inFlight = 0
  for _, c in pairs(S.cells) do
    if c.s > 0 and c.ss < v.ra and feeds(lim, c.m, c.b, bucket) then inFlight = inFlight + c.s end
  end
  v.cr = math.min(v.cr, inFlight)
end

local function unabsorb(v, lim, bucket, units, visibleBefore)
  local rise = units
  local fromCredit = math.min(v.cr, rise)
  v.cr = v.cr - fromCredit
  rise = rise - fromCredit
  local fromPartial = math.min(v.par, rise)
  v.par = v.par - fromPartial
  rise = rise - fromPartial
  local acked = S.acked
  local i = cursorIndex(v) - 1
  while i >= 1 and rise > 0 do
    local rec = acked[i]
    if feeds(lim, rec.m, rec.b, bucket) then
      if rec.at <= visibleBefore then break end
      local back = math.min(rec.u, rise)
      rise = rise - back
      v.cur = rec.q
      v.par = rec.u - back
    end
    i = i - 1
  end
end

local function reconcile(lim)
  local id = lim.l
  if lim.pb then id = lim.l .. '\\0' .. (A.b or '\\0') end
  local v = S.views[id]
  -- The customer's plan changed at S.rf (refresh()): a view of the old plan is not reconciled
  -- with the new one (a downgrade's fall of the allowance is no usage Planship absorbed), and a
  -- snapshot of the old plan, about to be decided again, leaves no view behind.
  local rf = S.rf
  if rf ~= nil and v ~= nil and v.sa < rf then v = nil end
  if v == nil then
    v = { sa = A.sa, ra = A.ra, rem = lim.rem, cur = firstSeq(), par = 0, cr = 0 }
    if rf == nil or A.sa >= rf then S.views[id] = v end
    return v
  end
  if A.sa <= v.sa then return v end
  local absorbed = v.rem - lim.rem
  v.sa = A.sa
  v.ra = A.ra
  v.rem = lim.rem
  local visibleBefore = v.sa - A.lag
  if absorbed >= 0 then
    v.cr = v.cr + absorbed
    absorb(v, lim, A.b, visibleBefore)
  else
    unabsorb(v, lim, A.b, -absorbed, visibleBefore)
  end
  return v
end

local function localUsage(lim, v)
  local units = 0
  local sentOrAcked = 0
  for _, c in pairs(S.cells) do
    if feeds(lim, c.m, c.b, A.b) then
      units = units + c.r + c.p
      sentOrAcked = sentOrAcked + c.s
    end
  end
  local visibleBefore = v.sa - A.lag
  local acked = S.acked
  for i = cursorIndex(v), #acked do
    local rec = acked[i]
    if rec.at > visibleBefore and feeds(lim, rec.m, rec.b, A.b) then
      local part = 0
      if rec.q == v.cur then part = v.par end
      sentOrAcked = sentOrAcked + rec.u - part
    end
  end
  return units + math.max(0, sentOrAcked - v.cr)
end
`

/**
 * The admission check that reserve and extend share: every limit of \`A.lims\` has room for
 * \`units\` after the fleet's usage (reconciled with the request's snapshot), or the refusal.
 */
const CHECK = `
local function leverSet(lim)
  lim.set = {}
  for _, m in ipairs(lim.ids) do lim.set[m] = true end
end

local function refusal(units)
  -- Admitted: the lever with the least room once the units are reserved (threshold alerts, headers).
  local least = nil
  for _, lim in ipairs(A.lims) do
    leverSet(lim)
    local v = reconcile(lim)
    local left = v.rem - localUsage(lim, v)
    -- left <= 0 also refuses a zero cost: a used-up (or 0, "no access") lever admits nothing.
    if left < units or left <= 0 then
      return { ok = false, lever = lim.l, remaining = math.max(0, left) }, nil
    end
    if least == nil or left - units < least.remaining then least = { lever = lim.l, remaining = left - units } end
  end
  return nil, least
end

-- Adds units to reservation A.id (made anew if need be) and holds it for A.ttl ms of Redis time.
local function hold(units)
  local r = S.res[A.id]
  if r == nil then
    r = { k = cellId(A.m, A.b), c = 0, e = 0 }
    S.res[A.id] = r
  end
  local c = cellOf(r.k, A.m, A.b)
  c.r = c.r + units
  r.c = r.c + units
  r.e = rnow + A.ttl
  return r
end
`

/** Checks every limit and reserves \`cost\` for \`TTL\` ms of Redis time, or refuses. */
const RESERVE = `
if S == nil then S = fresh() end
sweep()
if S.res[A.id] ~= nil then return cjson.encode({ ok = true, ep = S.ep }) end
local refused, least = refusal(A.cost)
if refused ~= nil then
  save()
  return cjson.encode(refused)
end
hold(A.cost)
save()
return cjson.encode({ ok = true, ep = S.ep, least = least })
`

/**
 * Reserves \`A.cost\` more units on a running reservation, checked as reserve checks a new one,
 * and adds them to its hold: commit and release settle the whole. Applied once per \`A.seq\`
 * (the reservation's extensions are numbered), so a late run of a timed-out call changes nothing
 * once a later one, or its cancellation, got there.
 *
 * A hold that is gone (its TTL ran out, the holder presumed dead, or Redis lost the state) gave its
 * units back to the fleet, and others may have them now: it is not silently brought back. All of it,
 * the \`A.held\` units it had and \`A.cost\` more, must fit again, or the extension is refused.
 */
const EXTEND = `
if S == nil then S = fresh() end
sweep()
local r = S.res[A.id]
if r ~= nil and S.ep ~= A.ep then r = nil end
if r ~= nil and (r.xs or 0) >= A.seq then return cjson.encode({ ok = true, ep = S.ep, replay = true }) end
local units = A.cost
if r == nil then units = A.held + A.cost end
local refused = refusal(units)
if refused ~= nil then
  save()
  return cjson.encode(refused)
end
S.exp[A.id] = nil
r = hold(units)
r.xs = A.seq
save()
return cjson.encode({ ok = true, ep = S.ep, back = units > A.cost })
`

/**
 * Cancels extension \`A.seq\` of a reservation, whose call timed out (it was decided in the
 * process instead): takes its units back if it was applied, and makes a late run of it a no-op.
 * Applied once (\`r.xc\`, the last cancelled extension).
 */
const UNEXTEND = `
if S == nil then return '{}' end
sweep()
local r = S.res[A.id]
if r ~= nil and (r.xc or 0) < A.seq then
  r.xc = A.seq
  if (r.xs or 0) >= A.seq then
    local c = cellOf(r.k, A.m, A.b)
    local back = math.min(A.cost, r.c)
    c.r = c.r - back
    r.c = r.c - back
  else
    r.xs = A.seq
  end
end
save()
return '{}'
`

/**
 * Keeps this process's open holds (\`A.ids\`) for \`A.ttl\` more ms: a live holder renews them,
 * a dead one stops, and they come back to the fleet a TTL later. Touches only holds that exist,
 * so a renewal racing a commit or release brings nothing back. Answers the ids that are gone.
 */
const RENEW = `
if S == nil then return cjson.encode({ gone = A.ids }) end
sweep()
local gone = {}
for _, id in ipairs(A.ids) do
  local r = S.res[id]
  if r ~= nil then r.e = rnow + A.ttl else gone[#gone + 1] = id end
end
save()
return cjson.encode({ gone = gone })
`

/**
 * Turns a reservation into pending usage, once: a replayed commit finds its reservation gone and
 * does nothing. Without a reservation of this state (\`A.ep\` absent, or Redis lost the state that
 * held it) it imports the usage once per id.
 */
const COMMIT = `
if S == nil then S = fresh() end
sweep()
local wasBusy = busy()
local apply = false
if A.ep ~= nil and S.ep == A.ep then
  local r = S.res[A.id]
  if r ~= nil then
    local c = S.cells[r.k]
    if c ~= nil then c.r = c.r - r.c end
    S.res[A.id] = nil
    apply = true
  elseif S.exp[A.id] ~= nil then
    S.exp[A.id] = nil
    apply = true
  end
elseif S.imp[A.id] == nil then
  S.imp[A.id] = rnow
  apply = true
end
local id = cellId(A.m, A.b)
if apply and A.usage > 0 then
  local c = cellOf(id, A.m, A.b)
  c.p = c.p + A.usage
end
dropIfEmpty(id)
save()
return cjson.encode({ applied = apply, due = (not wasBusy) and busy() })
`

/**
 * An allowance lease: a reservation of several units (\`r.c\`) that one replica admits requests
 * from without asking Redis. Each call, applied once per \`A.seq\`: settles what the replica used
 * (\`consumed\` reserved units become \`usage\` pending units), takes back \`giveBack\` unused
 * units, renews the lease and tops it up by up to \`want\` units — never more than a quarter of
 * what the fleet has left (the slice shrinks toward the request's cost near the limit, and the
 * sum of leases never exceeds what is left). The units count as reserved for every replica.
 */
const LEASE = `
if S == nil then S = fresh() end
sweep()
local id = cellId(A.m, A.b)
local r = S.res[A.id]
if r ~= nil and S.ep ~= A.ep then r = nil end
local wasBusy = busy()
local g = S.gs[A.id]
if g ~= nil and g.sq >= A.seq then
  return cjson.encode({ replay = true })
end
S.gs[A.id] = { sq = A.seq, at = rnow }
local c = cellOf(id, A.m, A.b)
if r ~= nil then
  local back = math.min(A.consumed + A.giveBack, r.c)
  r.c = r.c - back
  c.r = c.r - back
end
if A.usage > 0 then c.p = c.p + A.usage end
local extra = 0
local denied = nil
if A.want > 0 then
  local left = nil
  for _, lim in ipairs(A.lims) do
    leverSet(lim)
    local v = reconcile(lim)
    local l = v.rem - localUsage(lim, v)
    if left == nil or l < left then
      left = l
      denied = lim.l
    end
  end
  if left == nil then
    extra = A.want
  elseif left >= A.cost and left > 0 then
    extra = math.max(A.cost, math.min(A.want, math.floor(left / 4)))
  else
    extra = 0
    denied = { lever = denied, remaining = math.max(0, left) }
  end
end
if extra > 0 then
  if r == nil then
    r = { k = id, c = 0, e = 0 }
    S.res[A.id] = r
  end
  r.c = r.c + extra
  c.r = c.r + extra
  denied = nil
end
if r ~= nil then
  r.e = rnow + A.ttl
  if r.c <= 0 then S.res[A.id] = nil end
end
dropIfEmpty(id)
save()
local answer = { extra = extra, ep = S.ep, due = (not wasBusy) and busy() }
if type(denied) == 'table' then
  answer.lever = denied.lever
  answer.remaining = denied.remaining
end
return cjson.encode(answer)
`

const RELEASE = `
if S == nil then return '{}' end
sweep()
local r = S.res[A.id]
if r ~= nil then
  local c = S.cells[r.k]
  if c ~= nil then
    c.r = c.r - r.c
    dropIfEmpty(r.k)
  end
  S.res[A.id] = nil
end
S.exp[A.id] = nil
save()
return '{}'
`

/**
 * Claims the pending usage of every key not claimed by a live lease, for \`A.lease\` ms of Redis
 * time. A lease that ran out (its replica died or hung) is taken over: at least once, its units
 * are sent again and counted as possibly duplicated; at most once, dropped and counted as
 * possibly lost.
 */
const TAKE = `
if S == nil then return cjson.encode({ gone = true }) end
sweep()
local out = {}
local dup = 0
local lost = 0
for id, c in pairs(S.cells) do
  if c.tk ~= nil and c.te <= rnow then
    if A.alo then
      c.p = c.p + c.s
      dup = dup + c.s
      c.f = c.f + 1
    else
      lost = lost + c.s
    end
    c.s = 0
    c.tk = nil
    c.te = nil
  end
  if c.tk == nil and c.p > 0 and (A.dueBy < 0 or c.ra <= A.dueBy) then
    out[#out + 1] = { id = id, m = c.m, b = c.b, u = c.p, f = c.f }
    c.s = c.p
    c.p = 0
    c.ss = A.now
    c.tk = A.token
    c.te = rnow + A.lease
  end
  dropIfEmpty(id)
end
save()
return cjson.encode({ cid = S.cid, out = out, dup = dup, lost = lost, idle = not busy() })
`

/** Settles a claim: \`A.op\` is 'ack', 'restore' or 'discard'. A stale token changes nothing. */
const SETTLE = `
if S == nil then return cjson.encode({ stale = true }) end
sweep()
local c = S.cells[A.id]
if c == nil or c.tk ~= A.token then
  save()
  return cjson.encode({ stale = true })
end
local units = c.s
if A.op == 'ack' then
  S.acked[#S.acked + 1] = { m = c.m, b = c.b, u = units, sa = A.sentAt or c.ss, at = A.at, q = S.nq }
  S.nq = S.nq + 1
  c.f = 0
  c.ra = 0
elseif A.op == 'restore' then
  c.p = c.p + units
  c.f = A.failures + 1
  c.ra = A.retryAt
end
c.s = 0
c.tk = nil
c.te = nil
dropIfEmpty(A.id)
save()
return cjson.encode({ stale = false, idle = not busy() })
`

/** refresh(): when the customer's plan changed, for reconciliation (see \`reconcile\`). */
const MARK_REFRESHED = `
if S == nil then return cjson.encode({ ok = true }) end
if S.rf == nil or S.rf < A.at then S.rf = A.at end
save()
return cjson.encode({ ok = true })
`

export const SCRIPTS = {
  planshipMeterReserve: PRELUDE + RECONCILE + CHECK + RESERVE,
  planshipMeterExtend: PRELUDE + RECONCILE + CHECK + EXTEND,
  planshipMeterUnextend: PRELUDE + UNEXTEND,
  planshipMeterRenew: PRELUDE + RENEW,
  planshipMeterCommit: PRELUDE + COMMIT,
  planshipMeterRelease: PRELUDE + RELEASE,
  planshipMeterTake: PRELUDE + TAKE,
  planshipMeterSettle: PRELUDE + SETTLE,
  planshipMeterLease: PRELUDE + RECONCILE + CHECK + LEASE,
  planshipMeterMarkRefreshed: PRELUDE + MARK_REFRESHED,
} as const

export type ScriptName = keyof typeof SCRIPTS

/** What the admission check (\`CHECK\`) reads of a request: its key, cost, limits and snapshot. */
export function checkArgs(request: ReserveRequest) {
  return {
    cid: request.customerId,
    m: request.meteringId,
    b: request.bucket,
    cost: request.cost,
    lims: request.limits.map((limit) => ({
      l: limit.lever,
      rem: limit.remaining,
      ids: limit.meteringIds,
      pb: limit.perBucket,
    })),
    sa: request.snapshotAt,
    ra: request.receivedAt ?? request.snapshotAt,
  }
}

/** Removes an index entry only if nobody re-added it since it was read (one key, its own slot). */
export const FORGET_INDEX_ENTRY = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score ~= false and tonumber(score) < tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`
