import { randomBytes } from 'node:crypto'
import { describe } from '../enforcement/enforcer.js'
import { MemoryUsageStore } from '../enforcement/memory-store.js'
import type {
  DiscardReason,
  FleetDeliveryStats,
  LimitRoom,
  PendingReport,
  Reservation,
  ReserveRequest,
  ReserveResult,
  SharedReadKey,
  SharedSnapshot,
  StoreContext,
  UsageKey,
  UsageStore,
} from '../enforcement/store.js'
import { PlanshipMeterError } from '../errors.js'
import { RedisConnection } from './connection.js'
import { tagOf } from './keys.js'
import { Leases } from './lease.js'
import { checkArgs } from './lua.js'
import { sharedRead } from './shared-read.js'
import { claimOnce } from './alerts.js'
import { markRefreshed, readRefreshed } from './refresh.js'
import { available } from './status.js'
import { type RedisUsageStoreOptions, type ResolvedRedisOptions, resolveRedisOptions } from './options.js'
/** Every this many background passes, the whole index is swept, not only the `due` hint. */
const FULL_SWEEP_EVERY = 10
/** Renewal calls in flight at once (one per customer with open holds). */
const RENEWALS_IN_FLIGHT = 8
/** How long an op id is remembered to make a replay harmless, in ms. */
const KEEP_OPS_MS = 3_600_000

/** A mutation that may or may not have reached Redis: replayed, idempotently, until it answers. */
export type Op =
  | { kind: 'release'; tag: string; id: string }
  | {
      kind: 'commit'
      tag: string
      key: UsageKey
      id: string
      /** The state epoch of the reservation; absent for usage moved from this process's memory. */
      ep: string | undefined
      usage: number
      /** Held in local memory meanwhile, so local decisions count these units. */
      hold: Reservation | undefined
      /** Usage taken from local memory: leaves it once Redis has it. */
      report: PendingReport | undefined
    }
  | {
      /** A script that is applied once however often it runs (a claim's settlement, a lease call). */
      kind: 'script'
      script: 'planshipMeterSettle' | 'planshipMeterLease' | 'planshipMeterUnextend'
      tag: string
      args: Record<string, unknown>
    }

/** A reservation this process holds in Redis, open until it is committed or released. */
interface Hold {
  tag: string
  id: string
  ep: string
  key: UsageKey
  /** Units held in Redis; the caller's `cost` also counts extensions decided elsewhere (parts). */
  units: number
  /** Extensions sent to Redis so far: each is applied once, in order. */
  seq: number
  /** The last extension asked: the next one waits for it, so that they reach Redis in order. */
  extending: Promise<unknown>
  /** The same units in this process's memory, from a Redis failure on (see `#mirrorOpenHolds`). */
  mirror: Reservation | undefined
  /** Committed or released: never renewed again, even by an extension answering late. */
  settled: boolean
}

interface Claim {
  tag: string
  cellId: string
  token: string
}

/**
 * A {@link UsageStore} on Redis: several replicas enforce one quota exactly and committed
 * usage survives a replica's crash. Pass it as `createMeter({ store })`.
 *
 * Each customer's reservations, pending, claimed and acknowledged usage live in one key, changed
 * only by Lua scripts (EVALSHA, EVAL on NOSCRIPT): check-and-reserve is one atomic step for the
 * whole fleet. A running reservation (a stream) can grow with `extend`, checked the same way.
 * The holds of this process's running requests are renewed while it lives, so they expire
 * (`reservationTtlMs` later) only when it dies. When Redis fails or is slower than
 * `commandTimeoutMs`, decisions fall back to this process's memory with the same snapshot
 * (`source: 'local'`), counting what its running requests hold in Redis, and usage committed
 * meanwhile waits in memory until Redis answers again.
 *
 * @example
 * import { Redis } from 'ioredis'
 * const store = new RedisUsageStore({ client: new Redis(process.env.REDIS_URL) })
 * const planship = createMeter({ ...options, store })
 */
export class RedisUsageStore implements UsageStore {
  readonly #options: ResolvedRedisOptions
  #redis: RedisConnection | undefined
  /** This process, in reservation ids and claim tokens. */
  readonly #rid = randomBytes(6).toString('base64url')
  #seq = 0
  #ctx: StoreContext | undefined
  #local: MemoryUsageStore | undefined
  readonly #remote = new WeakMap<Reservation, Hold>()
  /** Open holds by customer tag, renewed every `reservationTtlMs / 3` while this process lives. */
  readonly #open = new Map<string, Map<string, Hold>>()
  readonly #localReservations = new WeakSet<Reservation>()
  /**
   * Extensions that could not be added to the reservation's own hold (a lease without room, Redis
   * failing): reserved as requests of their own, released when the reservation settles.
   */
  readonly #parts = new WeakMap<Reservation, Reservation[]>()
  /** Reservations committed or released: an extension answering after that is given back at once. */
  readonly #settled = new WeakSet<Reservation>()
  #renewTimer: NodeJS.Timeout | undefined
  readonly #claims = new WeakMap<PendingReport, Claim>()
  #replay: Op[] = []
  #mode: 'shared' | 'local' = 'shared'
  #recovering: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  #passes = 0
  #leases: Leases | undefined
  #settleTimer: NodeJS.Timeout | undefined
  #fleet: FleetDeliveryStats | undefined

  constructor(options: RedisUsageStoreOptions) {
    this.#options = resolveRedisOptions(options)
  }

  bind(context: StoreContext): void {
    if (this.#ctx !== undefined) throw new TypeError('planship-meter/redis: a RedisUsageStore serves one meter')
    this.#ctx = context
    const { client, keyPrefix, commandTimeoutMs } = this.#options
    this.#redis = new RedisConnection(client, keyPrefix, commandTimeoutMs, context.maxCustomers, context.recordCall)
    this.#local = new MemoryUsageStore({
      aggregationLagMs: context.aggregationLagMs,
      maxSnapshotAgeMs: context.maxSnapshotAgeMs,
      maxCustomers: context.maxCustomers,
      maxPendingKeys: context.maxPendingKeys,
      clock: context.clock,
    })
    this.#timer = setInterval(() => void this.#tick(), this.#options.probeIntervalMs)
    this.#timer.unref()
    // Three chances to renew a hold before it expires: a late timer or a slow call is no loss.
    this.#renewTimer = setInterval(
      () => void this.#renew(),
      Math.max(1, Math.floor(this.#options.reservationTtlMs / 3)),
    )
    this.#renewTimer.unref()
    if (this.#options.leaseUnits > 0) {
      this.#leases = new Leases({
        redis: () => this.#redis!,
        nextId: () => this.#nextId(),
        common: () => this.#common(context),
        replay: (tag, args) => this.#replay.push({ kind: 'script', script: 'planshipMeterLease', tag, args }),
        failed: (error) => this.#toLocal(error),
        maxUnits: this.#options.leaseUnits,
        ttlMs: this.#options.reservationTtlMs,
        settleMs: this.#options.settleIntervalMs,
      })
      this.#settleTimer = setInterval(() => {
        if (this.#mode === 'shared' && this.#ready()) void this.#leases!.settle()
      }, this.#options.settleIntervalMs)
      this.#settleTimer.unref()
    }
  }

  /** Whether decisions are taken in Redis (`'shared'`) or, Redis failing, in this process (`'local'`). */
  get mode(): 'shared' | 'local' {
    return this.#mode
  }

  async reserve(request: ReserveRequest): Promise<ReserveResult> {
    const ctx = this.#bound()
    if (!this.#shared()) return this.#reserveLocally(request)
    if (this.#leases !== undefined) {
      const leased = await this.#leases.reserve(request)
      if (leased === undefined) return this.#reserveLocally(request)
      if (leased !== 'exact') return leased
    }
    const tag = tagOf(request.customerId)
    const id = this.#nextId()
    // Sent first, answered in the same round trip as the script (see refresh.ts).
    const refreshed = readRefreshed(this.#redis!, tag)
    try {
      await this.#redis!.ensureIndexed(tag)
      const answer = await this.#redis!.run<CheckAnswer>('planshipMeterReserve', tag, {
        ...checkArgs(request),
        epoch: this.#nextId(),
        id,
        ttl: this.#options.reservationTtlMs,
        ...this.#common(ctx),
      })
      const refreshedAt = await refreshed
      if (!answer.ok) return { ok: false, lever: answer.lever ?? '', remaining: answer.remaining ?? 0, refreshedAt }
      const { customerId, meteringId, bucket, cost } = request
      const reservation: Reservation = { customerId, meteringId, bucket, cost }
      const key = { customerId, meteringId, bucket }
      const hold: Hold = {
        tag,
        id,
        ep: answer.ep ?? '',
        key,
        units: cost,
        seq: 0,
        extending: Promise.resolve(),
        mirror: undefined,
        settled: false,
      }
      this.#remote.set(reservation, hold)
      this.#list(hold)
      return { ok: true, reservation, refreshedAt, ...(answer.least !== undefined && { least: answer.least }) }
    } catch (error) {
      // It may still run later: the release makes sure its units come back before the TTL.
      this.#replay.push({ kind: 'release', tag, id })
      this.#toLocal(error)
      return this.#reserveLocally(request)
    }
  }

  /**
   * Reserves `request.cost` more units on a running reservation. One held in Redis grows there,
   * checked against the fleet's usage in one script; one admitted from a lease takes them from
   * the lease when it has them, else they are reserved as a request of their own would be (a
   * bigger lease or the exact path in Redis). Redis failing, they are decided in this process as
   * `reserve` decides then. Either way they settle with the reservation.
   */
  async extend(reservation: Reservation, request: ReserveRequest): Promise<ReserveResult> {
    const local = this.#bound() && this.#local!
    if (this.#localReservations.has(reservation)) return { ...local.extend(reservation, request), local: true }
    const hold = this.#remote.get(reservation)
    if (hold !== undefined) {
      const extending = hold.extending.then(() => this.#extendHold(reservation, hold, request))
      hold.extending = extending.catch(() => {})
      return extending
    }
    if (this.#leases?.has(reservation) !== true)
      throw new TypeError('planship-meter/redis: not a reservation of this store')
    if (this.#leases.extend(reservation, request.cost)) return { ok: true, reservation }
    return this.#withPart(reservation, request, await this.reserve(request))
  }

  async #extendHold(reservation: Reservation, hold: Hold, request: ReserveRequest): Promise<ReserveResult> {
    const ctx = this.#bound()
    if (hold.settled) return settledRefusal(request)
    if (!this.#shared()) return this.#withPart(reservation, request, this.#reserveLocally(request))
    const cancel = { id: hold.id, m: hold.key.meteringId, b: hold.key.bucket, seq: ++hold.seq, cost: request.cost }
    try {
      const answer = await this.#redis!.run<CheckAnswer & { back?: boolean }>('planshipMeterExtend', hold.tag, {
        ...checkArgs(request),
        ...cancel,
        ep: hold.ep,
        epoch: this.#nextId(),
        held: hold.units,
        ttl: this.#options.reservationTtlMs,
        ...this.#common(ctx),
      })
      if (!answer.ok) return refusal(answer)
      if (answer.back === true) {
        ctx.log.warn(
          'a reservation had expired in Redis before it settled; its units fit again and it holds them again',
        )
      }
      hold.ep = answer.ep ?? hold.ep
      hold.units += request.cost
      reservation.cost += request.cost
      this.#list(hold) // again, if a renewal had found it gone
      return { ok: true, reservation }
    } catch (error) {
      // It may still run later: cancelled once Redis answers, so that its units are held here only.
      this.#replay.push({ kind: 'script', script: 'planshipMeterUnextend', tag: hold.tag, args: cancel })
      this.#toLocal(error)
      return this.#withPart(reservation, request, this.#reserveLocally(request))
    }
  }

  /** An extension reserved as a request of its own (`result`): it settles with `reservation`. */
  #withPart(reservation: Reservation, request: ReserveRequest, result: ReserveResult): ReserveResult {
    if (!result.ok) return result
    if (this.#settled.has(reservation)) {
      // The stream ended while this was being reserved: nothing would release it later.
      void this.release(result.reservation)
      return settledRefusal(request)
    }
    const parts = this.#parts.get(reservation)
    if (parts === undefined) this.#parts.set(reservation, [result.reservation])
    else parts.push(result.reservation)
    reservation.cost += result.reservation.cost
    return { ...result, reservation }
  }

  /**
   * The reservation settled: so do the parts of it reserved on their own. Committed, they are
   * committed with no usage (the reservation's usage covers them): a part taken from a lease
   * must leave the lease, as its units are used, not go back to be admitted again here.
   * Released, they are released.
   */
  async #settleParts(reservation: Reservation, committed: boolean): Promise<void> {
    const parts = this.#parts.get(reservation)
    if (parts === undefined) return
    this.#parts.delete(reservation)
    for (const part of parts) await (committed ? this.commit(part, 0) : this.release(part))
  }

  /** Commits of this process not answered yet: a flush waits for them, as it would in memory. */
  readonly #committing = new Set<Promise<void>>()

  commit(reservation: Reservation, usage: number): Promise<void> {
    const committing = this.#commit(reservation, usage).finally(() => this.#committing.delete(committing))
    this.#committing.add(committing)
    return committing
  }

  async #commit(reservation: Reservation, usage: number): Promise<void> {
    this.#settled.add(reservation)
    try {
      await this.#commitHeld(reservation, usage)
    } finally {
      await this.#settleParts(reservation, true)
    }
  }

  async #commitHeld(reservation: Reservation, usage: number): Promise<void> {
    const local = this.#bound() && this.#local!
    if (this.#localReservations.has(reservation)) return local.commit(reservation, usage)
    if (this.#leases?.commit(reservation, usage) === true) return
    const remote = this.#remote.get(reservation)
    if (remote === undefined) throw new TypeError('planship-meter/redis: not a reservation of this store')
    this.#close(remote)
    const { customerId, meteringId, bucket } = reservation
    const op: Op = {
      kind: 'commit',
      tag: remote.tag,
      key: { customerId, meteringId, bucket },
      id: remote.id,
      ep: remote.ep,
      usage,
      hold: undefined,
      report: undefined,
    }
    if (await this.#applied(op)) return
    // Kept here until Redis answers; meanwhile the units count in this process's decisions.
    const hold = local.reserve({ customerId, meteringId, bucket, cost: usage, limits: [], snapshotAt: 0 })
    if (hold.ok) op.hold = hold.reservation
    this.#replay.push(op)
  }

  async release(reservation: Reservation): Promise<void> {
    this.#settled.add(reservation)
    try {
      await this.#releaseHeld(reservation)
    } finally {
      await this.#settleParts(reservation, false)
    }
  }

  async #releaseHeld(reservation: Reservation): Promise<void> {
    const local = this.#bound() && this.#local!
    if (this.#localReservations.has(reservation)) return local.release(reservation)
    if (this.#leases?.release(reservation) === true) return
    const remote = this.#remote.get(reservation)
    if (remote === undefined) return
    this.#close(remote)
    const op: Op = { kind: 'release', tag: remote.tag, id: remote.id }
    if (!(await this.#applied(op))) this.#replay.push(op)
  }

  /**
   * Claims the fleet's pending usage (any replica's), key by key, under a send lease. Usage
   * committed while Redis was down is moved there first. Nothing while Redis is unreachable.
   */
  async takePending(dueBy?: number): Promise<PendingReport[]> {
    const ctx = this.#bound()
    if (this.#committing.size > 0) await Promise.allSettled([...this.#committing])
    if (!this.#shared()) return []
    await this.#leases?.settle()
    await this.#recover()
    if (this.#isLocal()) return []
    const full = dueBy === undefined || ++this.#passes % FULL_SWEEP_EVERY === 0
    const reports: PendingReport[] = []
    const redis = this.#redis!
    try {
      const tags = await redis.indexed(full)
      const token = this.#nextId()
      const answers = await Promise.all(
        tags.map(({ tag }) =>
          redis.run<TakeAnswer>('planshipMeterTake', tag, {
            token,
            dueBy: dueBy ?? -1,
            lease: this.#options.sendLeaseMs,
            alo: ctx.delivery === 'at-least-once',
            ...this.#common(ctx),
          }),
        ),
      )
      const takeovers = { possiblyDuplicatedUnits: 0, possiblyLostUnits: 0 }
      const cleanup: Promise<unknown>[] = []
      answers.forEach((answer, i) => {
        const { tag, score } = tags[i]!
        if (answer.gone === true) {
          cleanup.push(redis.unmarkDue(tag))
          const forgetting = full ? redis.forget(tag, score) : undefined
          if (forgetting !== undefined) cleanup.push(forgetting)
          return
        }
        takeovers.possiblyDuplicatedUnits += answer.dup ?? 0
        takeovers.possiblyLostUnits += answer.lost ?? 0
        // Lua's cjson writes an empty table as {}.
        const cells = Array.isArray(answer.out) ? answer.out : []
        for (const cell of cells) {
          const report: PendingReport = {
            customerId: answer.cid!,
            meteringId: cell.m,
            bucket: cell.b,
            usage: cell.u,
            failures: cell.f,
          }
          this.#claims.set(report, { tag, cellId: cell.id, token })
          reports.push(report)
        }
        if (answer.idle === true && cells.length === 0) cleanup.push(redis.unmarkDue(tag))
      })
      if (takeovers.possiblyDuplicatedUnits + takeovers.possiblyLostUnits > 0) {
        ctx.log.warn('took over usage whose sender stopped before its lease ran out', takeovers)
        cleanup.push(this.#count(takeovers))
      }
      cleanup.push(redis.fleetStats().then((stats) => (this.#fleet = stats)))
      await redis.call(Promise.all(cleanup), 'index cleanup').catch(() => {})
    } catch (error) {
      this.#toLocal(error)
    }
    return reports
  }

  async acknowledge(report: PendingReport, at: number): Promise<void> {
    await this.#settle(report, { op: 'ack', sentAt: report.sentAt, at })
    await this.#count({ reports: 1, reportedUnits: report.usage })
  }

  async restore(report: PendingReport, retryAt = 0, possiblyApplied = false): Promise<void> {
    await this.#settle(report, { op: 'restore', failures: report.failures, retryAt })
    const duplicated = possiblyApplied && this.#ctx?.delivery === 'at-least-once' ? report.usage : 0
    await this.#count({ retries: 1, possiblyDuplicatedUnits: duplicated })
  }

  async discard(report: PendingReport, reason?: DiscardReason): Promise<void> {
    await this.#settle(report, { op: 'discard' })
    if (reason === 'rejected') await this.#count({ rejectedUnits: report.usage })
    if (reason === 'possibly-lost') await this.#count({ possiblyLostUnits: report.usage })
  }

  /** Units this process holds: committed while Redis was down, or not yet known to be in Redis. */
  pendingUnits(): number {
    let units = (this.#local?.pendingUnits() ?? 0) + (this.#leases?.unsettledUsage() ?? 0)
    for (const op of this.#replay) if (op.kind === 'commit' && op.report === undefined) units += op.usage
    return units
  }

  /** At close: moves what it can to Redis (other replicas deliver it); the rest goes to the app. */
  async takeUndelivered(): Promise<PendingReport[]> {
    const local = this.#local
    if (local === undefined) return []
    if (this.#ready()) {
      await this.#leases?.settle(true) // unused slices go back to the fleet
      await this.#recover()
    }
    const left = local.takePending()
    for (const report of left) local.discard(report)
    const unsure = this.#replay.filter((op) => op.kind === 'commit' && op.report === undefined).length
    if (unsure > 0) {
      this.#ctx?.log.error(`close(): ${unsure} usage commits may or may not have reached Redis before it failed`)
    }
    return left
  }

  /** One Planship read per customer per `ttlMs` for the whole fleet (see shared-read.ts). */
  sharedRead<V>(key: SharedReadKey, ttlMs: number, load: () => Promise<V>): Promise<SharedSnapshot<V>> {
    return sharedRead(this.#redis!, this.#bound(), this.#rid, key, ttlMs, load)
  }

  /** What the fleet's state says admission sees, reserving nothing (see status.ts). */
  async available(request: ReserveRequest): Promise<LimitRoom[]> {
    const ctx = this.#bound()
    if (!this.#shared()) return this.#local!.available(request)
    try {
      return await available(this.#redis!, request, this.#common(ctx))
    } catch {
      // A dashboard's read: this process's view answers it, and decisions stay shared (a failing
      // status script, say one an ACL refuses, is not an outage of the store).
      return this.#local!.available(request)
    }
  }

  /** Every replica's next shared decision sees the change (see refresh.ts). */
  async markRefreshed(customerId: string, at: number): Promise<void> {
    await this.#local?.markRefreshed(customerId)
    const ctx = this.#bound()
    await markRefreshed(this.#redis!, ctx, customerId, at, this.#common(ctx))
  }

  /** Once per fleet and period (see alerts.ts); rejects when Redis cannot say. */
  claimOnce(customerId: string, id: string, ttlMs: number): Promise<boolean> {
    this.#bound()
    return claimOnce(this.#redis!, customerId, id, ttlMs)
  }

  fleetDeliveryStats(): FleetDeliveryStats | undefined {
    return this.#fleet
  }

  close(): void {
    clearInterval(this.#timer)
    clearInterval(this.#settleTimer)
    clearInterval(this.#renewTimer)
    this.#redis?.close()
  }

  #bound(): StoreContext {
    if (this.#ctx === undefined) {
      throw new PlanshipMeterError('STORE_NOT_BOUND', 'pass the RedisUsageStore to createMeter({ store }) first')
    }
    return this.#ctx
  }

  /** Whether to use Redis now: not after a failure (until a probe succeeds), nor while disconnected. */
  #shared(): boolean {
    if (this.#mode === 'local') return false
    if (this.#ready()) return true
    const status = this.#redis!.client.status
    this.#toLocal(new PlanshipMeterError('STORE_TIMEOUT', `Redis is not connected (${status})`))
    return false
  }

  /** A method, so that TypeScript does not narrow the mode across an await. */
  #isLocal(): boolean {
    return this.#mode === 'local'
  }

  #ready(): boolean {
    return this.#redis?.ready() === true
  }

  #nextId(): string {
    return `${this.#rid}.${(this.#seq++).toString(36)}`
  }

  #common(ctx: StoreContext) {
    return {
      now: ctx.clock.now(),
      lag: ctx.aggregationLagMs,
      keep: ctx.maxSnapshotAgeMs,
      keepOps: KEEP_OPS_MS,
      idleTtl: ctx.aggregationLagMs + ctx.maxSnapshotAgeMs + this.#options.reservationTtlMs,
    }
  }

  /** Renewed from now on, until committed or released. */
  #list(hold: Hold): void {
    if (hold.settled) return
    let holds = this.#open.get(hold.tag)
    if (holds === undefined) this.#open.set(hold.tag, (holds = new Map()))
    holds.set(hold.id, hold)
  }

  #unlist(hold: Hold): void {
    const holds = this.#open.get(hold.tag)
    if (holds?.delete(hold.id) === true && holds.size === 0) this.#open.delete(hold.tag)
  }

  /** The hold settles: no more renewals (before the call, so none can race it), no more mirror. */
  #close(hold: Hold): void {
    hold.settled = true
    this.#unlist(hold)
    if (hold.mirror !== undefined) this.#local!.release(hold.mirror)
    hold.mirror = undefined
  }

  /**
   * Keeps this process's open holds alive in Redis: one script call per customer with open holds,
   * none at all when nothing is open. A hold found gone (it expired: renewals missed a TTL, or Redis
   * lost it) stops being renewed; its usage is still committed once, and an extension has to fit
   * in full again. A failed call is tried again at the next tick, well within the TTL.
   */
  async #renew(): Promise<void> {
    if (this.#open.size === 0 || !this.#ready()) return
    const ctx = this.#bound()
    const customers = [...this.#open]
    let lost = 0
    // A few calls in flight at a time: a request's own script never queues behind a thousand renewals.
    const worker = async () => {
      for (let entry = customers.pop(); entry !== undefined; entry = customers.pop()) {
        lost += await this.#renewCustomer(ctx, ...entry)
      }
    }
    await Promise.all(Array.from({ length: RENEWALS_IN_FLIGHT }, worker))
    if (lost > 0) {
      ctx.log.warn(`${lost} reservations expired in Redis before they settled: their units went back to the fleet`)
    }
  }

  /** Renews one customer's open holds; how many were found gone (and are no longer renewed). */
  async #renewCustomer(ctx: StoreContext, tag: string, holds: Map<string, Hold>): Promise<number> {
    let lost = 0
    try {
      const answer = await this.#redis!.run<{ gone: string[] | Record<string, never> }>('planshipMeterRenew', tag, {
        ids: [...holds.keys()],
        ttl: this.#options.reservationTtlMs,
        ...this.#common(ctx),
      })
      // Lua's cjson writes an empty table as {}.
      for (const id of Array.isArray(answer.gone) ? answer.gone : []) {
        const hold = holds.get(id)
        if (hold === undefined) continue
        this.#unlist(hold)
        lost++
      }
    } catch {
      // Tried again at the next tick; a Redis really failing is noticed by the next decision.
    }
    return lost
  }

  /**
   * Redis failing: this process's open holds are copied into its memory, so that what it decides
   * alone meanwhile counts the units its own running requests hold in Redis (else one process
   * could admit its whole allowance again next to them). Released when the reservation settles.
   */
  #mirrorOpenHolds(): void {
    const local = this.#local!
    for (const holds of this.#open.values()) {
      for (const hold of holds.values()) {
        const short = hold.units - (hold.mirror?.cost ?? 0)
        if (short <= 0) continue
        const request = { ...hold.key, cost: short, limits: [], snapshotAt: 0 }
        if (hold.mirror !== undefined) local.extend(hold.mirror, request)
        else {
          const mirrored = local.reserve(request)
          if (mirrored.ok) hold.mirror = mirrored.reservation
        }
      }
    }
  }

  #reserveLocally(request: ReserveRequest): ReserveResult {
    const result = this.#local!.reserve(request)
    if ('backlog' in result) return result
    if (result.ok) this.#localReservations.add(result.reservation)
    return { ...result, local: true }
  }

  /** Runs one mutation in Redis; throws when Redis did not answer (it may or may not have run). */
  async #apply(op: Op): Promise<void> {
    const ctx = this.#bound()
    const redis = this.#redis!
    if (op.kind === 'release') {
      await redis.run('planshipMeterRelease', op.tag, { id: op.id, ...this.#common(ctx) })
      return
    }
    if (op.kind === 'script') {
      await redis.ensureIndexed(op.tag)
      const answer = await redis.run<{ due?: boolean }>(op.script, op.tag, { ...op.args, ...this.#common(ctx) })
      if (answer.due === true) await redis.markDue(op.tag)
      return
    }
    await redis.ensureIndexed(op.tag)
    const answer = await redis.run<{ due: boolean }>('planshipMeterCommit', op.tag, {
      cid: op.key.customerId,
      epoch: this.#nextId(),
      id: op.id,
      ep: op.ep,
      m: op.key.meteringId,
      b: op.key.bucket,
      usage: op.usage,
      ...this.#common(ctx),
    })
    if (answer.due) await redis.markDue(op.tag)
  }

  async #settle(report: PendingReport, args: Record<string, unknown>): Promise<void> {
    const claim = this.#claims.get(report)
    if (claim === undefined) return
    this.#claims.delete(report)
    const op: Op = {
      kind: 'script',
      script: 'planshipMeterSettle',
      tag: claim.tag,
      args: { ...args, id: claim.cellId, token: claim.token },
    }
    // Else replayed later; if the lease runs out first, another replica takes the units over.
    if (!(await this.#applied(op))) this.#replay.push(op)
  }

  /** Applies `op` in Redis if it is usable; false (and local decisions from now) if not. */
  async #applied(op: Op): Promise<boolean> {
    if (!this.#shared()) return false
    try {
      await this.#apply(op)
      return true
    } catch (error) {
      this.#toLocal(error)
      return false
    }
  }

  /** Adds to the fleet's delivery totals, and keeps the totals Redis answers with. */
  async #count(fields: Partial<Record<keyof FleetDeliveryStats, number>>): Promise<void> {
    const stats = await this.#redis?.count(fields)
    if (stats !== undefined) this.#fleet = stats
  }

  /** Every probe interval: try Redis again after a failure, and move local usage there. */
  async #tick(): Promise<void> {
    if (!this.#ready()) return
    if (this.#mode === 'local') {
      try {
        await this.#redis!.call(this.#redis!.client.ping(), 'PING')
      } catch {
        return
      }
    } else if (this.#replay.length === 0 && (this.#local?.pendingUnits() ?? 0) === 0) {
      return
    }
    await this.#recover()
  }

  /** Replays what Redis may have missed, then moves usage committed in memory; one at a time. */
  #recover(): Promise<void> {
    this.#recovering ??= this.#replayAll().finally(() => {
      this.#recovering = undefined
    })
    return this.#recovering
  }

  async #replayAll(): Promise<void> {
    const local = this.#local!
    try {
      while (this.#replay.length > 0) {
        const op = this.#replay[0]!
        await this.#apply(op)
        this.#replay.shift()
        if (op.kind === 'commit' && op.hold !== undefined) local.release(op.hold)
        if (op.kind === 'commit' && op.report !== undefined) local.discard(op.report)
      }
      for (const report of local.takePending()) {
        const { customerId, meteringId, bucket } = report
        // A fresh id: applied once, however often it is replayed.
        this.#replay.push({
          kind: 'commit',
          tag: tagOf(customerId),
          key: { customerId, meteringId, bucket },
          id: this.#nextId(),
          ep: undefined,
          usage: report.usage,
          hold: undefined,
          report,
        })
      }
      while (this.#replay.length > 0) {
        const op = this.#replay[0]!
        await this.#apply(op)
        this.#replay.shift()
        if (op.kind === 'commit' && op.report !== undefined) local.discard(op.report)
      }
      this.#toShared()
    } catch (error) {
      this.#toLocal(error)
    }
  }

  #toLocal(error: unknown): void {
    if (this.#mode === 'local') return
    this.#mode = 'local'
    this.#mirrorOpenHolds()
    const ctx = this.#ctx!
    const message = 'Redis is not answering: deciding from this process’s memory until it does'
    ctx.log.warn(message, { error: describe(error) })
    ctx.emit?.({ type: 'store', state: 'local', message, error: describe(error) })
  }

  #toShared(): void {
    if (this.#mode === 'shared') return
    this.#mode = 'shared'
    const ctx = this.#ctx!
    const message = 'Redis answers again: decisions are shared across replicas'
    ctx.log.warn(message)
    ctx.emit?.({ type: 'store', state: 'shared', message })
  }
}

/** The answer of a script that checks limits (reserve, extend). */
interface CheckAnswer {
  ok: boolean
  ep?: string
  lever?: string
  remaining?: number
  /** The lever with the least room once the units are reserved (threshold alerts, headers). */
  least?: { lever: string; remaining: number }
}

/**
 * An extension of a reservation settled meanwhile (the stream ended, say): refused, as nothing
 * would ever release units added to it now.
 */
function settledRefusal(request: ReserveRequest): ReserveResult {
  return { ok: false, lever: request.limits[0]?.lever ?? '', remaining: 0 }
}

function refusal(answer: CheckAnswer): ReserveResult {
  return { ok: false, lever: answer.lever ?? '', remaining: answer.remaining ?? 0 }
}

interface TakeAnswer {
  gone?: boolean
  cid?: string
  out: { id: string; m: string; b?: string; u: number; f: number }[]
  dup?: number
  lost?: number
  idle?: boolean
}
