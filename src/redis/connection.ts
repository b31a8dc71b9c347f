import { PlanshipMeterError } from '../errors.js'
import type { StoreContext } from '../enforcement/store.js'
import type { Cluster, Redis } from 'ioredis'
import type { FleetDeliveryStats } from '../enforcement/store.js'
import { withDeadline } from './deadline.js'
import { type KeyLayout, keyLayout } from './keys.js'
import { FORGET_INDEX_ENTRY, type ScriptName, SCRIPTS } from './lua.js'

/** A customer's index entry is rewritten at least this often by a replica using it. */
const INDEX_REFRESH_MS = 10_000
/** An index entry whose state is gone is forgotten only when older than this (covers clock skew). */
const INDEX_FORGET_AFTER_MS = 60_000

type Command = (...args: unknown[]) => Promise<unknown>

/**
 * Every Redis call of the store, each under the store's own deadline, and the index of customers
 * with state (`P{ix}:all`, `P{ix}:due`) and the fleet's delivery totals (`P{ix}:stats`).
 */
export class RedisConnection {
  readonly client: Redis | Cluster
  readonly keys: KeyLayout
  readonly #timeoutMs: number
  readonly #maxIndexed: number
  /** When this process last wrote each customer's index entry. */
  readonly #indexedAt = new Map<string, number>()

  readonly #record: StoreContext['recordCall']

  constructor(
    client: Redis | Cluster,
    keyPrefix: string,
    timeoutMs: number,
    maxIndexed: number,
    record?: StoreContext['recordCall'],
  ) {
    this.client = client
    this.#record = record
    this.keys = keyLayout(keyPrefix)
    this.#timeoutMs = timeoutMs
    this.#maxIndexed = maxIndexed
    // ioredis's defineCommand sends EVALSHA, and EVAL when the node answers NOSCRIPT.
    for (const [name, lua] of Object.entries(SCRIPTS)) client.defineCommand(name, { numberOfKeys: 1, lua })
    client.defineCommand('planshipMeterForgetIndexEntry', { numberOfKeys: 1, lua: FORGET_INDEX_ENTRY })
    client.on('close', this.#forgetIndexed)
    client.on('ready', this.#preload)
    if (client.status === 'ready') this.#preload()
  }

  /**
   * Loads the scripts on every master as soon as the client is connected, so that a request's
   * first script is not the one paying for NOSCRIPT, EVAL and compiling within its deadline.
   */
  readonly #preload = () => {
    const targets = 'nodes' in this.client ? this.client.nodes('master') : [this.client]
    for (const node of targets) for (const lua of Object.values(SCRIPTS)) node.script('LOAD', lua).catch(() => {})
  }

  /** A new connection may reach a server that lost the index (restarted empty): write it again. */
  readonly #forgetIndexed = () => this.#indexedAt.clear()

  close(): void {
    this.client.off('close', this.#forgetIndexed)
    this.client.off('ready', this.#preload)
  }

  ready(): boolean {
    return this.client.status === 'ready'
  }

  /** One Redis call under the deadline, timed for metrics when the meter asks. */
  call<T>(promise: Promise<T>, what: string): Promise<T> {
    const record = this.#record
    if (record === undefined) return withDeadline(promise, this.#timeoutMs, what)
    const startedAt = performance.now()
    return withDeadline(promise, this.#timeoutMs, what).then(
      (value) => {
        record(what, performance.now() - startedAt)
        return value
      },
      (error: unknown) => {
        record(what, performance.now() - startedAt, errorType(error))
        throw error
      },
    )
  }

  /** Runs a script on the customer's state key, with its arguments as one JSON value. */
  async run<T>(script: ScriptName, tag: string, args: Record<string, unknown>): Promise<T> {
    const command = this.#command(script)
    const answer = await this.call(command.call(this.client, this.keys.customer(tag), JSON.stringify(args)), script)
    return JSON.parse(answer as string) as T
  }

  /**
   * Writes the customer's index entry before its state can hold usage, so that a replica that
   * dies after committing never leaves usage nobody finds. Once per {@link INDEX_REFRESH_MS}.
   */
  async ensureIndexed(tag: string): Promise<void> {
    const now = Date.now()
    const at = this.#indexedAt.get(tag)
    if (at !== undefined && now - at < INDEX_REFRESH_MS) return
    await this.call(this.client.zadd(this.keys.all, 'GT', now, tag), 'ZADD')
    this.#indexedAt.delete(tag)
    this.#indexedAt.set(tag, now)
    if (this.#indexedAt.size > this.#maxIndexed) this.#indexedAt.delete(this.#indexedAt.keys().next().value!)
  }

  /** Customers to look at: all of them, or those the `due` hint names. Scores are wall-clock ms. */
  async indexed(all: boolean): Promise<{ tag: string; score: number }[]> {
    const index = all ? this.keys.all : this.keys.due
    const listed = await this.call(this.client.zrange(index, '0', '-1', 'WITHSCORES'), 'ZRANGE')
    const tags: { tag: string; score: number }[] = []
    for (let i = 0; i + 1 < listed.length; i += 2) tags.push({ tag: listed[i]!, score: Number(listed[i + 1]) })
    return tags
  }

  /** A hint for the next flush pass; a full pass finds the usage even if this is lost. */
  markDue(tag: string): Promise<unknown> {
    return this.call(this.client.zadd(this.keys.due, Date.now(), tag), 'ZADD').catch(() => {})
  }

  unmarkDue(tag: string): Promise<unknown> {
    return this.client.zrem(this.keys.due, tag)
  }

  /** The customer's state is gone: drops its entry unless someone wrote it again meanwhile. */
  forget(tag: string, score: number): Promise<unknown> | undefined {
    const cutoff = Date.now() - INDEX_FORGET_AFTER_MS
    if (score >= cutoff) return undefined
    return this.#command('planshipMeterForgetIndexEntry').call(this.client, this.keys.all, tag, cutoff)
  }

  /** Adds to the fleet's delivery totals and reads them back (one round trip; best effort). */
  async count(fields: Partial<Record<keyof FleetDeliveryStats, number>>): Promise<FleetDeliveryStats | undefined> {
    const entries = Object.entries(fields).filter(([, value]) => value !== undefined && value > 0)
    if (entries.length === 0 || !this.ready()) return undefined
    const pipeline = this.client.pipeline()
    for (const [field, value] of entries) pipeline.hincrby(this.keys.stats, field, value!)
    pipeline.hgetall(this.keys.stats)
    const results = await this.call(pipeline.exec(), 'HINCRBY').catch(() => null)
    const last = results?.[results.length - 1]
    return last !== undefined && last[0] === null ? fleetStats(last[1] as Record<string, string>) : undefined
  }

  async fleetStats(): Promise<FleetDeliveryStats> {
    return fleetStats(await this.client.hgetall(this.keys.stats))
  }

  #command(name: string): Command {
    return (this.client as unknown as Record<string, Command>)[name]!
  }
}

function fleetStats(raw: Record<string, string>): FleetDeliveryStats {
  const read = (field: keyof FleetDeliveryStats) => Number(raw[field] ?? 0)
  return {
    reports: read('reports'),
    reportedUnits: read('reportedUnits'),
    retries: read('retries'),
    possiblyDuplicatedUnits: read('possiblyDuplicatedUnits'),
    possiblyLostUnits: read('possiblyLostUnits'),
    rejectedUnits: read('rejectedUnits'),
  }
}

/** A low-cardinality name for a failed call: our timeout, or the client's error name. */
function errorType(error: unknown): string {
  if (error instanceof PlanshipMeterError) return error.code === 'STORE_TIMEOUT' ? 'timeout' : error.code
  return error instanceof Error ? error.name : 'unknown'
}
