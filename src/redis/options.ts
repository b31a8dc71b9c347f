import type { Cluster, Redis } from 'ioredis'
import { integerOption, invalidOption } from '../option-checks.js'

/** Options of {@link RedisUsageStore}. The meter hands it the clock, the lag and the bounds. */
export interface RedisUsageStoreOptions {
  /**
   * A connected ioredis client (`new Redis(url)`) or `Cluster`. Yours: `meter.close()` does not
   * close it. Required.
   */
  client: Redis | Cluster
  /**
   * Put before every key. Keep braces out of it on Redis Cluster: a `{…}` in the prefix would
   * put every customer in one slot. Defaults to `'planship-meter:'`.
   */
  keyPrefix?: string
  /**
   * How long one Redis call may take, in ms. Past it the decision is taken from this process's
   * memory (`source: 'local'`), so no request waits on Redis longer than this. Defaults to `50`.
   */
  commandTimeoutMs?: number
  /**
   * How long a reservation outlives its process, in ms of Redis time. A live replica renews the
   * holds of its running requests (and open neutral reservations) every third of this, so a
   * stream keeps its units however long it runs; a replica that dies between admitting and
   * settling stops renewing, and its units come back to the fleet after this long.
   * Defaults to `60000`.
   */
  reservationTtlMs?: number
  /**
   * How long a replica may take to send the usage it claimed from the outbox, in ms of Redis
   * time. After it (the replica died or hung), another replica sends those units again, counted
   * as possibly duplicated (at least once) or drops them, counted as possibly lost (at most once).
   * Must exceed a flush pass. Defaults to `30000`.
   */
  sendLeaseMs?: number
  /** While Redis is unreachable, how often it is tried again, in ms. Defaults to `1000`. */
  probeIntervalMs?: number
  /**
   * Allowance leasing: the most units of a customer × metering id × bucket this replica may hold
   * and admit from without asking Redis (a slice never exceeds a quarter of what is left, so the
   * fleet stays exact). A warm customer then costs about one Redis call per settle interval
   * instead of two per request. `0` turns leasing off. Defaults to `0`.
   */
  leaseUnits?: number
  /**
   * With leasing, how often usage admitted from a lease is written to Redis, in ms: what a
   * SIGKILL can lose. Also how soon an idle lease is given back. Defaults to `50`.
   */
  settleIntervalMs?: number
}

export interface ResolvedRedisOptions {
  client: Redis | Cluster
  keyPrefix: string
  commandTimeoutMs: number
  reservationTtlMs: number
  sendLeaseMs: number
  probeIntervalMs: number
  leaseUnits: number
  settleIntervalMs: number
}

const SCOPE = 'planship-meter/redis'

function fail(option: string, expected: string): never {
  return invalidOption(SCOPE, option, expected)
}

function positiveInteger(value: number | undefined, option: string, fallback: number): number {
  return integerOption(SCOPE, value, option, fallback, 1)
}

function nonNegativeInteger(value: number | undefined, option: string, fallback: number): number {
  return integerOption(SCOPE, value, option, fallback, 0)
}

/** Validates the options once; throws a `TypeError` naming the option. */
export function resolveRedisOptions(options: RedisUsageStoreOptions): ResolvedRedisOptions {
  if (options === null || typeof options !== 'object') fail('options', 'an object')
  const client = options.client as Partial<Redis> | undefined
  if (client === null || typeof client !== 'object' || typeof client.defineCommand !== 'function') {
    fail('client', 'an ioredis Redis or Cluster client')
  }
  const keyPrefix = options.keyPrefix ?? 'planship-meter:'
  if (typeof keyPrefix !== 'string') fail('keyPrefix', 'a string')
  return {
    client: options.client,
    keyPrefix,
    commandTimeoutMs: positiveInteger(options.commandTimeoutMs, 'commandTimeoutMs', 50),
    reservationTtlMs: positiveInteger(options.reservationTtlMs, 'reservationTtlMs', 60_000),
    sendLeaseMs: positiveInteger(options.sendLeaseMs, 'sendLeaseMs', 30_000),
    probeIntervalMs: positiveInteger(options.probeIntervalMs, 'probeIntervalMs', 1_000),
    leaseUnits: nonNegativeInteger(options.leaseUnits, 'leaseUnits', 0),
    settleIntervalMs: positiveInteger(options.settleIntervalMs, 'settleIntervalMs', 50),
  }
}
