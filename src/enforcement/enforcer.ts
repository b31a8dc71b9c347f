import { LRUCache } from 'lru-cache'
import { PlanshipMeterError } from '../errors.js'
import type { EventSink } from '../events.js'
import type { Log } from '../log.js'
import type { Clock } from '../types.js'
import type { PlanshipClient } from '../planship/client.js'
import { meteringIdHint } from '../planship/metering-ids.js'
import type { Entitlements, LeverUsage } from '../planship/types.js'
import { CircuitBreaker } from './backoff.js'
import { type Cached, type Freshness, RefreshingCache, type Snapshot } from './cache.js'
import { fullBucketAllowance, INVALID, isEntitled, isPerBucket, meteredRemaining } from './entitlements.js'
import {
  isPromiseLike,
  type LeverLimit,
  type MaybePromise,
  type Reservation,
  type ReserveRequest,
  type ReserveResult,
  type UsageKey,
  type UsageStore,
} from './store.js'

export interface EnforcerConfig {
  client: PlanshipClient
  store: UsageStore
  ttlMs: number
  maxStaleMs: number
  max: number
  failMode: 'open' | 'closed'
  clock: Clock
  log: Log
  emit: EventSink | undefined
  /** Sees every admission's least room, for threshold alerts; `undefined` when alerts are off. */
  observe?: ((customerId: string, lever: string, remaining: number, limit: number) => void) | undefined
}

/**
 * Where a decision's data came from: a fresh or stale cached snapshot, or none at all, in which
 * case `failMode` decided. `'local'`: a shared store (Redis) was unreachable, so this process
 * decided from a cached snapshot and its own memory only.
 */
export type DecisionSource = Freshness | 'fail-open' | 'fail-closed' | 'local'

export type Denied =
  | { reason: 'quota'; lever: string | undefined; remaining: number; limit: number | undefined; cost: number }
  | { reason: 'feature'; lever: string }
  | { reason: 'unavailable'; error: unknown }
  /** The customer id cannot be sent to Planship: nothing may be admitted or billed for it. */
  | { reason: 'unidentified'; error: unknown }

/** The lever with the least room after an admission, for RateLimit headers. */
export interface Room {
  lever: string
  /** Units left once the admitted cost is counted. */
  remaining: number
  /** The lever's whole allowance, when cached data tells it. */
  limit: number | undefined
}

export type ConsumeDecision =
  | { allowed: true; source: DecisionSource; reservation: Reservation; room?: Room }
  | { allowed: false; source: DecisionSource; denied: Denied }

export type FeatureDecision =
  { allowed: true; source: DecisionSource } | { allowed: false; source: DecisionSource; denied: Denied }

export interface ConsumeRequest {
  customerId: string
  meteringId: string
  bucket: string | undefined
  cost: number
  /** Overrides the meter's `failMode` for this request. */
  failMode?: 'open' | 'closed' | undefined
  /** Say which lever has the least room after admission (from cached data only). */
  room?: boolean
  /**
   * A running reservation of the same key to add `cost` to (a stream reserving more), instead
   * of a new one. It settles as one: admitting more does not open another.
   */
  extending?: Reservation | undefined
  /**
   * Taken a second time (after another replica's refresh, or to confirm a stale denial): not a
   * third (clocks of replicas may differ a little).
   */
  redecided?: true
  /** Read again after its snapshot was forgotten while being read: not again. */
  reread?: true
}

/** What `view()` finds for one lever scope (the lever, or one bucket of a per-bucket lever). */
export interface ScopeView {
  bucket: string | undefined
  unlimited: boolean
  /** What admission sees left (below 0 when overdrawn); 0 when unlimited. */
  left: number
  /** Usage the snapshot does not contain yet (reserved, pending, recently delivered). */
  unseen: number
  /** The snapshot's remaining allowance. */
  snapshotRemaining: number
  /** Used in the cached usage answer, when there is one. */
  used: number | undefined
}

export type LeverView =
  | { lever: string; kind: 'metered'; scopes: ScopeView[] }
  | { lever: string; kind: 'feature'; value: Entitlements[string] }

export interface CustomerView {
  source: Freshness
  levers: LeverView[]
}

interface PlannedLimits {
  levers: string[]
  catalog: number
  limits: readonly LeverLimit[]
  /**
   * The last lever with the least room and its whole allowance, for RateLimit-Policy. Valid as
   * long as the plan: new usage data also bumps the catalog, which replans.
   */
  room?: { lever: string; limit: number | undefined }
}

/** How often the product-level map of metering ids to levers is re-learned. */
const CATALOG_TTL_MS = 600_000

/**
 * Decides from cached Planship data whether a request may consume usage or use a feature, and
 * reserves what it admits. Knows nothing of HTTP frameworks.
 */
export class Enforcer {
  readonly #config: EnforcerConfig
  readonly #entitlements: RefreshingCache<Entitlements>
  /** Per customer × metering id: usage of each lever the id feeds. Read on cold paths only. */
  readonly #usage: RefreshingCache<Record<string, LeverUsage>>
  /** Product-level: metering id → the levers it feeds, learned from metering-id usage answers. */
  readonly #leversByMeteringId = new Map<string, { levers: string[]; learnedAt: number }>()
  /** The inverse, restricted to metering ids this process has seen. */
  readonly #meteringIdsByLever = new Map<string, string[]>()
  /** Admitted requests whose reservation is not settled yet; close() waits for them. */
  #open = 0
  #drained: (() => void) | undefined
  #stopped = false
  #sealed = false
  /** Grows whenever what metering ids feed is learned again: planned limits are recomputed. */
  #catalog = 0
  /** Metering ids already reported as feeding no lever (logged once each). */
  readonly #unknownMeteringIds = new Set<string>()
  /**
   * Another replica's refresh marks acted on, per customer: one reload per mark, shared by every
   * request that saw it, and a snapshot read since is not taken for an older one (clocks of
   * replicas differ a little).
   */
  readonly #refreshes: LRUCache<string, { mark: number; since: number; reload: Promise<unknown> }>
  /** Requests refused because `reporting.maxPendingKeys` keys were waiting for delivery. */
  backlogRefusals = 0
  /** Shared by every Planship read; its state is a metric. */
  readonly breaker: CircuitBreaker

  constructor(config: EnforcerConfig) {
    this.#config = config
    this.breaker = new CircuitBreaker(config.clock)
    this.#refreshes = new LRUCache({ max: config.max })
    const common = {
      max: config.max,
      ttlMs: config.ttlMs,
      maxStaleMs: config.maxStaleMs,
      clock: config.clock,
      breaker: this.breaker,
      onRefreshError: (_key: string, error: unknown) => {
        const message = 'refreshing cached Planship data failed; serving stale data'
        config.log.throttled('warn', `refresh:${codeOf(error)}`, message, { error: describe(error) })
        config.emit?.({ type: 'error', message, error: describe(error) })
      },
    }
    const { store } = config
    this.#entitlements = new RefreshingCache({
      ...common,
      load: (customerId) => this.#loadEntitlements(customerId),
      // With a shared store, one process of the fleet reads Planship per ttlMs, the others its copy.
      shared:
        store.sharedRead &&
        ((customerId, load, force) =>
          store.sharedRead!({ customerId, name: 'entitlements' }, force ? 0 : config.ttlMs, load)),
    })
    this.#usage = new RefreshingCache({
      ...common,
      load: (key) => this.#loadUsage(key),
      // The levers were learned (and plans redone) a few microtasks before the snapshot is
      // stored: a plan made in between took its RateLimit-Policy allowance from the older usage.
      onStored: () => this.#catalog++,
      shared:
        store.sharedRead &&
        (async (key, load, force) => {
          const [customerId = '', meteringId = ''] = key.split('\u0000')
          const name = `usage:${meteringId}`
          const snapshot = await store.sharedRead!({ customerId, name }, force ? 0 : config.ttlMs, load)
          this.#learn(meteringId, Object.keys(snapshot.value)) // a copy teaches the levers as a read does
          return snapshot
        }),
    })
  }

  /**
   * Decides a consume request and reserves its cost when admitted. Synchronous when the data
   * is cached and the store is (the warm path allocates no promise).
   */
  consume(request: ConsumeRequest): MaybePromise<ConsumeDecision> {
    if (this.#stopped) return meterClosed()
    const entitlements = this.#entitlements.peek(request.customerId)
    const levers = this.#knownLevers(request.customerId, request.meteringId)
    if (entitlements !== undefined && levers !== undefined) return this.#reserve(request, entitlements, levers)
    return this.#consumeCold(request, entitlements, levers)
  }

  async #consumeCold(
    request: ConsumeRequest,
    cachedEntitlements: Cached<Entitlements> | undefined,
    knownLevers: string[] | undefined,
  ): Promise<ConsumeDecision> {
    const { customerId, meteringId } = request
    let entitlements: Cached<Entitlements>
    let levers: string[]
    try {
      ;[entitlements, levers] = await Promise.all([
        cachedEntitlements ?? this.#entitlements.get(customerId),
        knownLevers ?? this.#learnLevers(customerId, meteringId),
      ])
    } catch (error) {
      if (!isNotFound(error)) return this.#withoutData(request, error)
      // Planship does not know the customer: nothing is entitled.
      const denied: Denied = { reason: 'quota', lever: undefined, remaining: 0, limit: 0, cost: request.cost }
      return { allowed: false, source: 'fresh', denied }
    }
    // Forgotten while it was read (a refresh, the customer bound): decided again from a new read,
    // once (an entry the LRU evicted looks the same, and must not make reads without end).
    if (!this.#entitlements.holds(customerId, entitlements.snapshot) && request.reread !== true)
      return this.consume({ ...request, reread: true })
    return this.#reserve(request, entitlements, levers)
  }

  #reserve(
    request: ConsumeRequest,
    entitlements: Cached<Entitlements>,
    levers: string[],
    anyUsage = false,
  ): MaybePromise<ConsumeDecision> {
    const snapshot = entitlements.snapshot
    const plan = this.#plan(request, entitlements, levers, anyUsage)
    if (plan instanceof Promise) return plan
    const reserveRequest: ReserveRequest = {
      customerId: request.customerId,
      meteringId: request.meteringId,
      bucket: request.bucket,
      cost: request.cost,
      limits: plan.limits,
      snapshotAt: snapshot.fetchedAt,
      receivedAt: snapshot.receivedAt,
    }
    const result = this.#storeReserve(request, reserveRequest)
    return isPromiseLike(result)
      ? Promise.resolve(result).then((settled) => this.#decided(request, entitlements, plan, settled))
      : this.#decided(request, entitlements, plan, result)
  }

  /** A new reservation, or more on the running one the request extends. */
  #storeReserve(request: ConsumeRequest, reserveRequest: ReserveRequest): MaybePromise<ReserveResult> {
    const store = this.#config.store
    return request.extending === undefined
      ? store.reserve(reserveRequest)
      : store.extend(request.extending, reserveRequest)
  }

  /**
   * The limits a request checks: one per lever the metering id feeds, from the snapshot. They
   * are the same for every request of the customer until the snapshot or the catalog changes,
   * so they are computed once per snapshot, metering id and bucket.
   */
  #plan(
    request: ConsumeRequest,
    entitlements: Cached<Entitlements>,
    levers: string[],
    anyUsage: boolean,
  ): PlannedLimits | Promise<ConsumeDecision> {
    const snapshot = entitlements.snapshot
    const planKey = request.bucket === undefined ? request.meteringId : `${request.meteringId}\u0000${request.bucket}`
    // Kept with the snapshot (see Cached.derived): a warm request finds them without a lookup of its own.
    const plans = entitlements.derived as Map<string, PlannedLimits>
    const planned = plans.get(planKey)
    if (planned !== undefined && planned.levers === levers && planned.catalog === this.#catalog) return planned
    const limits: LeverLimit[] = []
    let fromUsage = false
    for (const lever of levers) {
      const value = snapshot.value[lever]
      let remaining = meteredRemaining(value, request.bucket)
      if (remaining === INVALID) return this.#invalidEntitlement(request, lever)
      if (remaining === null) {
        // A bucket Planship has not seen yet has the whole allowance: what a seen bucket has left
        // plus what it used. That needs usage read no earlier than the entitlements (an older
        // reading would miss usage they count), once per cache period.
        const usage = this.#usage.peek(usageKey(request.customerId, request.meteringId))
        if (usage === undefined || (!anyUsage && usage.snapshot.fetchedAt < snapshot.fetchedAt)) {
          return this.#withUsage(request, entitlements, levers, usage !== undefined)
        }
        remaining = fullBucketAllowance(value as Record<string, number>, usage.snapshot.value[lever])
        fromUsage = true
      }
      if (remaining === undefined) continue
      const meteringIds = this.#meteringIdsByLever.get(lever) ?? [request.meteringId]
      limits.push({ lever, remaining, meteringIds, perBucket: isPerBucket(value) })
    }
    const plan: PlannedLimits = { levers, catalog: this.#catalog, limits }
    // An unseen bucket's allowance also depends on the usage snapshot: not kept.
    if (!fromUsage) plans.set(planKey, plan)
    return plan
  }

  async #withUsage(
    request: ConsumeRequest,
    entitlements: Cached<Entitlements>,
    levers: string[],
    hasOlderUsage: boolean,
  ): Promise<ConsumeDecision> {
    try {
      await this.#usage.refresh(usageKey(request.customerId, request.meteringId))
    } catch (error) {
      // An older reading still gives an allowance (a smaller one at worst); none leaves failMode.
      if (!hasOlderUsage) return this.#withoutData(request, error)
    }
    if (!this.#entitlements.holds(request.customerId, entitlements.snapshot) && request.reread !== true)
      return this.consume({ ...request, reread: true })
    return this.#reserve(request, entitlements, levers, true)
  }

  #decided(
    request: ConsumeRequest,
    entitlements: Cached<Entitlements>,
    plan: PlannedLimits,
    result: ReserveResult,
  ): MaybePromise<ConsumeDecision> {
    const source = 'local' in result && result.local === true ? 'local' : entitlements.freshness
    if (
      result.refreshedAt !== undefined &&
      request.redecided !== true &&
      request.extending === undefined &&
      this.#olderThanRefresh(request.customerId, result.refreshedAt, entitlements.snapshot)
    )
      return this.#redecide(request, result, result.refreshedAt)
    if (result.ok) {
      if (request.extending !== undefined) return { allowed: true, source, reservation: result.reservation }
      if (this.#stopped) return this.#closedMeanwhile(result.reservation)
      this.#open++
      const observed = result.least
      if (this.#config.observe !== undefined && observed !== undefined)
        this.#observe(request, entitlements, observed.lever, observed.remaining)
      const least = request.room === true ? result.least : undefined
      if (least === undefined) return { allowed: true, source, reservation: result.reservation }
      let room = plan.room
      if (room?.lever !== least.lever) {
        room = { lever: least.lever, limit: this.#limitOf(request, least.lever, entitlements.snapshot, false) }
        plan.room = room
      }
      const { lever, remaining } = least
      return { allowed: true, source, reservation: result.reservation, room: { lever, remaining, limit: room.limit } }
    }
    if ('backlog' in result) {
      this.backlogRefusals++
      return backlogFull(source)
    }
    // A stale snapshot saying no waits for the read it started: a rolling window or a renewal may
    // have given the allowance back while the customer was away (every replica denied its first
    // request after a quiet spell). At most one wait per customer and ttlMs: the read is shared.
    if (source === 'stale' && request.redecided !== true && request.extending === undefined)
      return this.#confirmDenial(request, entitlements, plan, result)
    const limit = this.#limitOf(request, result.lever, entitlements.snapshot)
    // Used up: the last admission may have been on another replica, or its usage read late.
    if (this.#config.observe !== undefined && result.remaining === 0)
      this.#observe(request, entitlements, result.lever, 0)
    return {
      allowed: false,
      source,
      denied: { reason: 'quota', lever: result.lever, remaining: result.remaining, limit, cost: request.cost },
    }
  }

  /** Decides again once the customer's entitlements are read; the stale denial stands if they cannot be. */
  async #confirmDenial(
    request: ConsumeRequest,
    entitlements: Cached<Entitlements>,
    plan: PlannedLimits,
    result: ReserveResult,
  ): Promise<ConsumeDecision> {
    try {
      await this.#entitlements.refresh(request.customerId)
    } catch {
      return this.#decided({ ...request, redecided: true }, entitlements, plan, result)
    }
    return this.consume({ ...request, redecided: true })
  }

  /**
   * Another replica refreshed the customer after the snapshot this decision used: the decision
   * is undone and taken again from Planship's new data (read through the shared copy).
   */
  async #redecide(request: ConsumeRequest, result: ReserveResult, mark: number): Promise<ConsumeDecision> {
    const { customerId } = request
    if (result.ok) {
      // A release that fails leaves the hold to expire (reservationTtlMs): the decision goes on.
      await Promise.resolve()
        .then(() => this.#config.store.release(result.reservation))
        .catch(() => {})
    }
    let acted = this.#refreshes.get(customerId)
    if (acted === undefined || acted.mark < mark) {
      this.#drop(customerId, true)
      const since = this.#config.clock.now()
      // From Planship itself: a shared copy could have been overwritten by a read older than the change.
      const reload = this.#entitlements.reload(customerId).catch(() => {}) // else the decision goes by failMode
      this.#refreshes.set(customerId, (acted = { mark, since, reload }))
    }
    await acted.reload
    return this.consume({ ...request, redecided: true })
  }

  /** Whether `snapshot` was read before the customer's latest refresh (`mark`), and not since it was acted on. */
  #olderThanRefresh(customerId: string, mark: number, snapshot: Snapshot<Entitlements>): boolean {
    if (mark <= snapshot.fetchedAt) return false
    const acted = this.#refreshes.get(customerId)
    return acted === undefined || acted.mark < mark || snapshot.fetchedAt < acted.since
  }

  /**
   * Threshold alerts: what is used of `lever` once this decision counts. Its limit is the
   * snapshot's remaining plus the used of a usage answer read no earlier (an older one, from
   * before a rolling window moved on or a period renewed, would make it too large). Until there
   * is one, the observation waits for a read rather than being dropped: a burst of cold requests
   * is decided before its usage read lands, and dropping those observations missed the crossing.
   * The first read may be one begun before the entitlements, or a shared copy as old: the second
   * comes from Planship itself.
   */
  #observe(
    request: ConsumeRequest,
    entitlements: Cached<Entitlements>,
    lever: string,
    remaining: number,
    reads = 0,
  ): void {
    const key = usageKey(request.customerId, request.meteringId)
    const usage = this.#usage.peek(key, false)
    if (usage === undefined || usage.snapshot.fetchedAt < entitlements.snapshot.fetchedAt) {
      if (reads < 2)
        this.#usage.refresh(key, reads === 1).then(
          () => this.#observe(request, entitlements, lever, remaining, reads + 1),
          () => {}, // a failed read leaves this decision unobserved; the next crossing is seen
        )
      return
    }
    const limit = this.#limitOf(request, lever, entitlements.snapshot, false)
    if (limit !== undefined && limit > 0) this.#config.observe!(request.customerId, lever, remaining, limit)
  }

  /**
   * Drops the customer's cached Planship data (entitlements, and usage of every metering id this
   * process knows). `evenLoading`: reads in flight are dropped too (their answers are not kept);
   * otherwise a customer with a read in flight is not forgotten, and `false` is returned.
   */
  #drop(customerId: string, evenLoading: boolean): boolean {
    const keys = [...this.#leversByMeteringId.keys()].map((meteringId) => usageKey(customerId, meteringId))
    if (!evenLoading && !this.#entitlements.forget(customerId)) return false
    if (!evenLoading && keys.some((key) => !this.#usage.forget(key))) return false
    if (evenLoading) this.#entitlements.forget(customerId, true)
    for (const key of keys) this.#usage.forget(key, true)
    return true
  }

  /** The customer bound: the store forgets a customer, and its cached Planship data goes with it. */
  forget(customerId: string): boolean {
    return this.#drop(customerId, false)
  }

  /**
   * A plan change: the customer's cached entitlements and usage are dropped and read from
   * Planship again (never from a shared copy) before this resolves; with a shared store, every
   * replica is told, so that its next decision uses the new data.
   */
  async refresh(customerId: string): Promise<void> {
    const meteringIds = [...this.#leversByMeteringId.keys()]
    this.#drop(customerId, true)
    // Before the reads: decisions waiting on them must not reconcile the new plan with views of the
    // old one (a downgrade's fall of the allowance is not usage Planship absorbed). The fleet hears
    // at once too: Planship has the change already, so a read begun from now on has it.
    await this.#config.store.markRefreshed?.(customerId, this.#config.clock.now())
    const [entitlements] = await Promise.all([
      this.#entitlements.reload(customerId),
      ...meteringIds.map((meteringId) => this.#usage.reload(usageKey(customerId, meteringId))),
    ])
    await this.#config.store.markRefreshed?.(customerId, entitlements.fetchedAt)
  }

  /**
   * The customer's entitlements and, for each metered lever, what admission sees now: the raw
   * material of `status()`. Reads Planship only for what is not cached; reserves nothing.
   */
  async view(customerId: string): Promise<CustomerView> {
    let entitlements: Cached<Entitlements>
    try {
      entitlements = this.#entitlements.peek(customerId) ?? (await this.#entitlements.get(customerId))
    } catch (error) {
      if (isNotFound(error)) return { source: 'fresh', levers: [] } // Planship does not know the customer
      throw error
    }
    const { snapshot } = entitlements
    const catalog = await this.#meteredLevers()
    // Every metering id's usage read at once: with Planship slow, a status waits for one read, not one per lever.
    const usageOf = new Map<string, Promise<Record<string, LeverUsage> | undefined>>()
    for (const lever of Object.keys(snapshot.value)) {
      const meteringId = catalog.get(lever)?.[0]
      if (meteringId !== undefined && !usageOf.has(meteringId))
        usageOf.set(meteringId, this.#cachedUsage(customerId, meteringId, snapshot.fetchedAt))
    }
    const levers: LeverView[] = []
    for (const [lever, value] of Object.entries(snapshot.value)) {
      const meteringIds = catalog.get(lever)
      if (meteringIds === undefined || meteringIds.length === 0) {
        levers.push({ lever, kind: 'feature', value })
        continue
      }
      const meteringId = meteringIds[0]!
      const usage = await usageOf.get(meteringId)
      const leverUsage = usage?.[lever]
      const perBucket = isPerBucket(value)
      const buckets: (string | undefined)[] = [undefined]
      if (perBucket) {
        const seen = Object.keys(value as object).filter((bucket) => bucket !== 'null')
        const local = (await this.#config.store.bucketsOf?.(customerId, meteringIds)) ?? []
        for (const bucket of new Set([...seen, ...local])) buckets.push(bucket)
      }
      const scopes: ScopeView[] = []
      for (const bucket of buckets) {
        let remaining = meteredRemaining(value, bucket)
        if (remaining === INVALID) break
        if (remaining === null) remaining = fullBucketAllowance(value as Record<string, number>, leverUsage)
        const used =
          leverUsage === undefined
            ? undefined
            : perBucket
              ? (leverUsage.by_bucket[bucket ?? 'null'] ?? 0)
              : leverUsage.total
        if (remaining === undefined) {
          scopes.push({ bucket, unlimited: true, left: 0, unseen: 0, snapshotRemaining: 0, used })
          continue
        }
        const limit: LeverLimit = { lever, remaining, meteringIds, perBucket }
        const request: ReserveRequest = {
          customerId,
          meteringId,
          bucket,
          cost: 0,
          limits: [limit],
          snapshotAt: snapshot.fetchedAt,
          receivedAt: snapshot.receivedAt,
        }
        const room = (await this.#config.store.available?.(request))?.[0] ?? { lever, left: remaining, unseen: 0 }
        scopes.push({
          bucket,
          unlimited: false,
          left: room.left,
          unseen: room.unseen,
          snapshotRemaining: remaining,
          used,
        })
      }
      if (scopes.length > 0) levers.push({ lever, kind: 'metered', scopes })
    }
    return { source: entitlements.freshness, levers }
  }

  /**
   * Usage of the metering id as cached, read again when it is older than `since` (the
   * entitlements': a limit is their remaining plus this used, so the two must describe about the
   * same moment); `undefined` when it cannot be read.
   */
  async #cachedUsage(
    customerId: string,
    meteringId: string,
    since: number,
  ): Promise<Record<string, LeverUsage> | undefined> {
    const key = usageKey(customerId, meteringId)
    try {
      const cached = this.#usage.peek(key)
      if (cached !== undefined && cached.snapshot.fetchedAt >= since) return cached.snapshot.value
      return (await this.#usage.refresh(key)).value
    } catch {
      return undefined
    }
  }

  /** Metered levers of the product and the metering ids feeding each: read once, else what decisions taught. */
  async #meteredLevers(): Promise<ReadonlyMap<string, readonly string[]>> {
    try {
      const byId = await this.#config.client.meteringIds()
      const byLever = new Map<string, string[]>()
      for (const [meteringId, levers] of byId)
        for (const lever of levers) byLever.set(lever, [...(byLever.get(lever) ?? []), meteringId])
      return byLever
    } catch {
      return this.#meteringIdsByLever
    }
  }

  /**
   * Reserves `cost` without checking any limit (shadow mode, `report()`): the usage is tracked
   * and delivered like the rest. `undefined` when it cannot be kept (closed, backlog full).
   */
  reserveUnchecked(key: UsageKey, cost: number, extending?: Reservation): MaybePromise<Reservation | undefined> {
    if (this.#stopped) return undefined
    const snapshotAt = this.#config.clock.now()
    const request: ReserveRequest = { ...key, cost, limits: [], snapshotAt }
    const result = this.#storeReserve({ ...request, extending }, request)
    const admitted = (settled: ReserveResult): MaybePromise<Reservation | undefined> => {
      if (settled.ok && extending !== undefined) return settled.reservation
      if (!settled.ok) {
        this.backlogRefusals++
        return undefined
      }
      // A shared store answered after close() began: nothing would deliver this usage any more.
      if (this.#stopped) return Promise.resolve(this.#config.store.release(settled.reservation)).then(() => undefined)
      this.#open++
      return settled.reservation
    }
    return isPromiseLike(result) ? Promise.resolve(result).then(admitted) : admitted(result)
  }

  /**
   * close() began while this decision waited for Planship or the store: drain() no longer waits
   * for it and the last flush may be over, so its usage could not be delivered. Refused instead.
   */
  async #closedMeanwhile(reservation: Reservation): Promise<ConsumeDecision> {
    await this.#config.store.release(reservation)
    return meterClosed()
  }

  /** The admitted request's usage is to be reported: `usage` units replace the reservation. */
  commit(reservation: Reservation, usage: number): MaybePromise<void> {
    if (this.#sealed && usage > 0) {
      // close() has taken its last look at pending usage: these units would sit in the store
      // unsent and unlisted. Say so, and return the reservation instead.
      const message = `usage committed after close() finished draining is not recorded (${usage} units of ${reservation.meteringId})`
      this.#config.log.error(message, { meteringId: reservation.meteringId, units: usage })
      this.#config.emit?.({ type: 'error', message, error: 'METER_CLOSED' })
      return this.release(reservation)
    }
    return this.#settled(this.#config.store.commit(reservation, usage))
  }

  /** Whether close() has finished waiting for admitted requests: commits after it are not recorded. */
  get sealed(): boolean {
    return this.#sealed
  }

  /** Called by close() once draining is over, before the last flush. */
  seal(): void {
    this.#sealed = true
  }

  /** The admitted request is not reported: its reservation is returned. */
  release(reservation: Reservation): MaybePromise<void> {
    return this.#settled(this.#config.store.release(reservation))
  }

  #settled(done: MaybePromise<void>): MaybePromise<void> {
    if (isPromiseLike(done)) return Promise.resolve(done).finally(() => this.#close1())
    this.#close1()
  }

  #close1(): void {
    if (--this.#open === 0) this.#drained?.()
  }

  /** Refuses metered requests from now on (they get `unavailable`); feature checks go on. */
  stop(): void {
    this.#stopped = true
  }

  /** Resolves once every admitted request has settled, or at `deadline` (`performance.now()` time). */
  drain(deadline: number): Promise<void> {
    if (this.#open === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(0, deadline - performance.now()))
      this.#drained = done
      function done() {
        clearTimeout(timer)
        resolve()
      }
    })
  }

  requireFeature(customerId: string, lever: string, failMode = this.#config.failMode): MaybePromise<FeatureDecision> {
    const entitlements = this.#entitlements.peek(customerId)
    if (entitlements !== undefined) return featureDecision(entitlements, lever)
    return this.#entitlements.get(customerId).then(
      (loaded) => featureDecision(loaded, lever),
      (error: unknown): FeatureDecision => {
        // Planship does not know the customer: nothing is entitled (a 404 is an answer, not an outage).
        if (isNotFound(error)) return { allowed: false, source: 'fresh', denied: { reason: 'feature', lever } }
        if (isInvalidCustomer(error))
          return { allowed: false, source: 'fresh', denied: { reason: 'unidentified', error } }
        if (this.#failing(failMode, error) === 'open') return { allowed: true, source: 'fail-open' }
        return { allowed: false, source: 'fail-closed', denied: { reason: 'unavailable', error } }
      },
    )
  }

  /**
   * Says, once per interval per cause, that a decision is taken without Planship data. Refused
   * credentials and an unknown product are configuration errors, not outages: they are said at
   * error level from the first request on, with what to check and what failMode does meanwhile.
   */
  #failing(failMode: 'open' | 'closed', error: unknown): 'open' | 'closed' {
    const code = codeOf(error)
    const misconfigured = code === 'PLANSHIP_AUTH_FAILED' || code === 'PLANSHIP_PRODUCT_NOT_FOUND'
    const message = misconfigured
      ? `Planship configuration error (not an outage): ${(error as Error).message}. ${UNTIL_FIXED[failMode]}`
      : `no usable Planship data; failing ${failMode}`
    const fields = misconfigured ? { code } : { error: describe(error) }
    this.#config.log.throttled(misconfigured ? 'error' : 'warn', `fail-${failMode}:${code}`, message, fields)
    this.#config.emit?.({ type: 'error', message, error: describe(error) })
    return failMode
  }

  /** A metered entitlement Planship cannot mean: invalid data, logged, and `failMode` decides. */
  #invalidEntitlement(request: ConsumeRequest, lever: string): Promise<ConsumeDecision> {
    const error = new PlanshipMeterError(
      'PLANSHIP_BAD_RESPONSE',
      `Planship's entitlement for the metered lever ${lever} is not a whole number ≥ -1 (or a map of them by bucket)`,
    )
    this.#config.log.throttled('error', `invalid-entitlement:${lever}`, error.message, { lever })
    return this.#withoutData(request, error)
  }

  /** No usable data: admit (still tracking usage, so it gets reported) or refuse, per `failMode`. */
  async #withoutData(request: ConsumeRequest, error: unknown): Promise<ConsumeDecision> {
    if (isInvalidCustomer(error)) return { allowed: false, source: 'fresh', denied: { reason: 'unidentified', error } }
    const failMode = this.#failing(request.failMode ?? this.#config.failMode, error)
    if (failMode === 'closed') {
      return { allowed: false, source: 'fail-closed', denied: { reason: 'unavailable', error } }
    }
    const { customerId, meteringId, bucket, cost } = request
    const snapshotAt = this.#config.clock.now()
    const result = await this.#storeReserve(request, { customerId, meteringId, bucket, cost, limits: [], snapshotAt })
    if (result.ok && request.extending !== undefined)
      return { allowed: true, source: 'fail-open', reservation: result.reservation }
    if (result.ok && this.#stopped) return this.#closedMeanwhile(result.reservation)
    if (!result.ok) {
      this.backlogRefusals++ // without limits, only a full backlog refuses
      return backlogFull('fail-open')
    }
    this.#open++
    return { allowed: true, source: 'fail-open', reservation: result.reservation }
  }

  #knownLevers(customerId: string, meteringId: string): string[] | undefined {
    const known = this.#leversByMeteringId.get(meteringId)
    if (known === undefined) return undefined
    const now = this.#config.clock.now()
    if (now - known.learnedAt > CATALOG_TTL_MS) {
      known.learnedAt = now // one re-learning at a time, not one per request
      this.#usage.refresh(usageKey(customerId, meteringId)).catch(() => {})
    }
    return known.levers
  }

  async #learnLevers(customerId: string, meteringId: string): Promise<string[]> {
    await this.#usage.get(usageKey(customerId, meteringId))
    return this.#leversByMeteringId.get(meteringId)?.levers ?? []
  }

  /**
   * The lever's full allowance (remaining + used) for the RateLimit-Policy header, from cached
   * data only: a denial never waits for Planship. Unknown until the usage is cached; with `load`,
   * a denial has it read in the background (an admitted request never causes a read).
   */
  #limitOf(request: ConsumeRequest, lever: string, snapshot: Snapshot<Entitlements>, load = true): number | undefined {
    const key = usageKey(request.customerId, request.meteringId)
    const cached = this.#usage.peek(key, load)
    if (cached === undefined) {
      if (load) this.#usage.get(key).catch(() => {})
      return undefined
    }
    const usage = cached.snapshot.value[lever]
    const value = snapshot.value[lever]
    const remaining = meteredRemaining(value, request.bucket)
    if (remaining === null) return fullBucketAllowance(value as Record<string, number>, usage)
    if (usage === undefined || remaining === undefined || remaining === INVALID) return undefined
    const used = isPerBucket(value) ? (usage.by_bucket[request.bucket ?? 'null'] ?? 0) : usage.total
    return remaining + used
  }

  async #loadEntitlements(customerId: string): Promise<Entitlements> {
    return this.#config.client.getEntitlements(customerId)
  }

  async #loadUsage(key: string): Promise<Record<string, LeverUsage>> {
    const [customerId = '', meteringId = ''] = key.split('\u0000')
    const usage = await this.#config.client.getMeteringIdUsage(customerId, meteringId)
    this.#learn(meteringId, Object.keys(usage))
    return usage
  }

  /**
   * Most likely a typo: it meters nothing and enforces nothing, so say so loudly, once, naming
   * the id meant. The product's ids are read for that once, in the background: no request waits.
   */
  async #sayUnknown(meteringId: string): Promise<void> {
    const hint = await this.#config.client.meteringIds().then(
      (catalog) => ` ${meteringIdHint(meteringId, catalog)}`,
      () => '', // Planship cannot say now: the message goes without the hint
    )
    const message = `metering id "${meteringId}" feeds no lever of the product: its usage is reported but limits nothing.${hint}`
    this.#config.log.error(message, { meteringId })
    this.#config.emit?.({ type: 'misconfiguration', problem: 'unknown-metering-id', message, meteringId })
  }

  #learn(meteringId: string, levers: string[]): void {
    if (levers.length === 0 && !this.#unknownMeteringIds.has(meteringId)) {
      this.#unknownMeteringIds.add(meteringId)
      void this.#sayUnknown(meteringId)
    }
    this.#leversByMeteringId.set(meteringId, { levers, learnedAt: this.#config.clock.now() })
    this.#catalog++
    for (const lever of levers) {
      const ids = this.#meteringIdsByLever.get(lever) ?? []
      if (!ids.includes(meteringId)) this.#meteringIdsByLever.set(lever, [...ids, meteringId])
    }
  }
}

/** What the meter does while Planship refuses its configuration, by failMode. */
const UNTIL_FIXED = {
  open: "Until it is fixed, requests are admitted without checking quotas or features (failMode: 'open')",
  closed: "Until it is fixed, metered and feature-gated requests are refused with 503 (failMode: 'closed')",
}

function meterClosed(): ConsumeDecision {
  const error = new PlanshipMeterError('METER_CLOSED', 'the meter is closed')
  return { allowed: false, source: 'fail-closed', denied: { reason: 'unavailable', error } }
}

function backlogFull(source: DecisionSource): ConsumeDecision {
  const error = new PlanshipMeterError('USAGE_BACKLOG_FULL', 'too much usage is waiting to be reported to Planship')
  return { allowed: false, source, denied: { reason: 'unavailable', error } }
}

function featureDecision(entitlements: Cached<Entitlements>, lever: string): FeatureDecision {
  if (isEntitled(entitlements.snapshot.value[lever])) return { allowed: true, source: entitlements.freshness }
  return { allowed: false, source: entitlements.freshness, denied: { reason: 'feature', lever } }
}

function usageKey(customerId: string, meteringId: string): string {
  return `${customerId}\u0000${meteringId}`
}

/** Planship does not know the customer (a product it does not know is another error). */
function isNotFound(error: unknown): boolean {
  return error instanceof PlanshipMeterError && error.code === 'PLANSHIP_HTTP_ERROR' && error.status === 404
}

function isInvalidCustomer(error: unknown): boolean {
  return error instanceof PlanshipMeterError && error.code === 'INVALID_CUSTOMER_ID'
}

function codeOf(error: unknown): string {
  return error instanceof PlanshipMeterError ? error.code : 'UNEXPECTED'
}

export function describe(error: unknown): string {
  if (error instanceof PlanshipMeterError) return `${error.code}: ${error.message}`
  return error instanceof Error ? error.message : String(error)
}
