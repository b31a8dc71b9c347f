import { LRUCache } from 'lru-cache'
import type { Clock } from '../types.js'
import { backoffMs, type CircuitBreaker } from './backoff.js'

/** A cached value and when its fetch started (the point in time the data describes at the latest). */
export interface Snapshot<V> {
  value: V
  fetchedAt: number
  /** When the answer arrived: anything sent after it cannot be in it. */
  receivedAt: number
}

/** How a lookup was answered. */
export type Freshness = 'fresh' | 'stale'

/** A usable snapshot and whether it is still fresh. */
export interface Cached<V> {
  snapshot: Snapshot<V>
  freshness: Freshness
  /**
   * What callers derived from this snapshot (the enforcer's planned limits), kept with it and
   * shared by its fresh and stale answers: found without a lookup of its own on a warm request.
   */
  derived: Map<string, unknown>
}

/** An entry's place in the LRU order is refreshed at most this often: a move costs on every warm lookup. */
const TOUCH_INTERVAL_MS = 1_000

export interface RefreshingCacheConfig<V> {
  max: number
  ttlMs: number
  maxStaleMs: number
  clock: Clock
  load: (key: string) => Promise<V>
  /** Shared by the caches that read Planship: no loads at all while Planship looks down. */
  breaker: CircuitBreaker
  /** Called when a background refresh fails; the stale value keeps being served. */
  onRefreshError: (key: string, error: unknown) => void
  /** Called once a loaded snapshot is stored, so that what was derived from the previous one can be redone. */
  onStored?: (() => void) | undefined
  /**
   * Loads through a copy shared with other processes (a shared store), timestamps included.
   * `force`: the shared copy is not to be used, however young (a refresh after a plan change).
   */
  shared?: ((key: string, load: () => Promise<V>, force: boolean) => Promise<Snapshot<V>>) | undefined
}

/**
 * Stale-while-revalidate over a bounded LRU: fresh for `ttlMs`, then served stale (and
 * refreshed in the background) for `maxStaleMs` more, including while Planship fails.
 * One load per key at a time, however many callers wait for it.
 *
 * Staleness is tracked here, not with lru-cache's own TTL, because lru-cache has no bound on
 * how long a stale value may be served after failed refreshes.
 */
export class RefreshingCache<V> {
  /** Each snapshot with its two possible answers, built once: a warm lookup allocates nothing. */
  readonly #lru: LRUCache<string, { fresh: Cached<V>; stale: Cached<V>; touchedAt: number }>
  readonly #inflight = new Map<string, Promise<Snapshot<V>>>()
  /** Recent load failures: a failing key is tried once per backoff (growing), not per request. */
  readonly #failures: LRUCache<string, { retryAt: number; count: number; error: unknown }>
  readonly #config: RefreshingCacheConfig<V>

  constructor(config: RefreshingCacheConfig<V>) {
    this.#config = config
    this.#lru = new LRUCache({ max: config.max })
    this.#failures = new LRUCache({ max: config.max })
  }

  /**
   * The usable snapshot for `key` without waiting, or `undefined` when there is none. A stale
   * snapshot starts a background refresh, unless `refresh` is false.
   */
  peek(key: string, refresh = true): Cached<V> | undefined {
    const entry = this.#lru.peek(key)
    if (entry === undefined) return undefined
    const now = this.#config.clock.now()
    if (now - entry.touchedAt >= TOUCH_INTERVAL_MS) {
      entry.touchedAt = now
      this.#lru.get(key) // most recently used: the least recently used are evicted first
    }
    const age = now - entry.fresh.snapshot.fetchedAt
    if (age < this.#config.ttlMs) return entry.fresh
    if (age >= this.#config.ttlMs + this.#config.maxStaleMs) return undefined
    if (refresh && !this.#inflight.has(key) && !this.#backingOff(key, now) && this.#config.breaker.closed()) {
      this.#refresh(key).catch((error: unknown) => this.#config.onRefreshError(key, error))
    }
    return entry.stale
  }

  /** The usable snapshot for `key`, loading it when there is none. Rejects when loading fails. */
  async get(key: string): Promise<Cached<V>> {
    const cached = this.peek(key)
    if (cached !== undefined) return cached
    const snapshot = await this.#refresh(key)
    // The stored answer when it is this one, so that what is derived from it is kept with it.
    const stored = this.#lru.peek(key)?.fresh
    return stored?.snapshot === snapshot ? stored : { snapshot, freshness: 'fresh', derived: new Map() }
  }

  /**
   * Loads `key` again even when its snapshot is fresh (one load at a time still); `fromSource`
   * skips a shared copy, however young.
   */
  refresh(key: string, fromSource = false): Promise<Snapshot<V>> {
    return this.#refresh(key, fromSource)
  }

  /**
   * Drops `key` and reads it again, from the source (a shared copy is not used): a load already in
   * flight began before the change being waited for, so its answer is neither kept nor waited for.
   */
  reload(key: string): Promise<Snapshot<V>> {
    this.forget(key, true)
    this.#failures.delete(key)
    return this.#refresh(key, true)
  }

  /**
   * Drops what is cached for `key`. Without `evenLoading`, a key with a load in flight is kept
   * (and `false` returned): a decision may be waiting for that load, and must find what it read
   * still cached (see {@link holds}).
   */
  forget(key: string, evenLoading = false): boolean {
    if (this.#inflight.has(key)) {
      if (!evenLoading) return false
      this.#inflight.delete(key) // its answer is dropped when it lands (see #refresh)
    }
    this.#lru.delete(key)
    return true
  }

  /** Whether `snapshot` is the one cached for `key` now: not forgotten or replaced since it was read. */
  holds(key: string, snapshot: Snapshot<V>): boolean {
    return this.#lru.peek(key)?.fresh.snapshot === snapshot
  }

  #refresh(key: string, force = false): Promise<Snapshot<V>> {
    let pending = this.#inflight.get(key)
    if (pending !== undefined) return pending
    const fetchedAt = this.#config.clock.now()
    if (this.#backingOff(key, fetchedAt)) return Promise.reject(this.#failures.get(key)?.error)
    const refusal = this.#config.breaker.begin()
    if (refusal !== undefined) return Promise.reject(refusal)
    const load = () => this.#config.load(key)
    const loading =
      this.#config.shared?.(key, load, force) ??
      load().then((value) => ({ value, fetchedAt, receivedAt: this.#config.clock.now() }))
    pending = loading
      .then(
        (snapshot) => {
          // Planship answered, kept or not: a dropped answer may be the breaker's recovery probe,
          // which would otherwise leave it half open, refusing every read for good.
          this.#config.breaker.success()
          // Forgotten while loading (a refresh or the customer bound): the answer is not kept.
          if (this.#inflight.get(key) !== pending) return snapshot
          const derived = new Map<string, unknown>()
          this.#lru.set(key, {
            fresh: { snapshot, freshness: 'fresh', derived },
            stale: { snapshot, freshness: 'stale', derived },
            touchedAt: this.#config.clock.now(),
          })
          this.#config.onStored?.()
          this.#failures.delete(key)
          return snapshot
        },
        (error: unknown) => {
          const count = (this.#failures.get(key)?.count ?? 0) + 1
          this.#failures.set(key, { retryAt: this.#config.clock.now() + backoffMs(count), count, error })
          this.#config.breaker.failure(error)
          throw error
        },
      )
      .finally(() => {
        if (this.#inflight.get(key) === pending) this.#inflight.delete(key)
      })
    this.#inflight.set(key, pending)
    return pending
  }

  #backingOff(key: string, now: number): boolean {
    const failure = this.#failures.get(key)
    return failure !== undefined && now < failure.retryAt
  }

  get size(): number {
    return this.#lru.size
  }
}
