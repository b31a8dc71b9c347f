import type { Reservation, ReserveRequest, ReserveResult } from '../enforcement/store.js'
import type { RedisConnection } from './connection.js'
import { tagOf } from './keys.js'
import { checkArgs } from './lua.js'

/** What the lease manager needs from the store. */
export interface LeaseHost {
  redis(): RedisConnection
  nextId(): string
  /** Arguments every script takes (clock, lag, bounds). */
  common(): Record<string, unknown>
  /** Runs a lease call later, once, after Redis failed to answer it. */
  replay(tag: string, args: Record<string, unknown>): void
  /** Redis failed: decisions go local. */
  failed(error: unknown): void
  maxUnits: number
  ttlMs: number
  settleMs: number
}

/** Units of one customer × metering id × bucket that this replica admits from without Redis. */
interface Grant {
  tag: string
  id: string
  ep: string | undefined
  customerId: string
  meteringId: string
  bucket: string | undefined
  /** Lease calls so far: each is applied once in Redis. */
  seq: number
  /** Units free to admit. */
  left: number
  /** Admitted requests still running. */
  held: number
  /** Reserved units of finished requests, and their usage, not yet settled in Redis. */
  consumed: number
  usage: number
  /** Date.now() of the oldest usage not settled yet (0: none). */
  unsettledSince: number
  admitted: number
  /** How many units to ask for next. */
  want: number
  /** Date.now() after which no request is admitted from it (well before Redis expires it). */
  usableUntil: number
  renewAt: number
  call: Promise<void> | undefined
  dead: boolean
}

/**
 * Allowance leasing: a replica reserves a slice of a customer's remaining allowance in Redis and
 * admits from it locally, so a warm customer costs a Redis call per slice (and per settle
 * interval), not per request. Still exact: the slice counts as reserved for every replica, and
 * the script never leases more than a quarter of what is left. Usage is settled into Redis every
 * `settleMs`; that is what a SIGKILL can lose, with the unused rest of the slice coming back after
 * the reservation TTL.
 */
export class Leases {
  readonly #host: LeaseHost
  readonly #grants = new Map<string, Grant>()
  /** Abandoned after a failed call, with requests still running or usage still to settle. */
  readonly #orphans = new Set<Grant>()
  /**
   * The grant of each reservation admitted from one, and the units it holds there: the caller's
   * \`cost\` also counts extensions reserved elsewhere (see \`RedisUsageStore.extend\`).
   */
  readonly #byReservation = new WeakMap<Reservation, { grant: Grant; units: number }>()

  constructor(host: LeaseHost) {
    this.#host = host
  }

  /**
   * Admits from a lease, asking Redis for a (new or bigger) one when this one cannot. `undefined`:
   * Redis failed; `'exact'`: no lease fits (a zero cost, a crowd of waiters), reserve as usual.
   */
  async reserve(request: ReserveRequest): Promise<ReserveResult | 'exact' | undefined> {
    if (request.cost <= 0) return 'exact'
    const key = `${tagOf(request.customerId)}\u0000${request.meteringId}\u0000${request.bucket ?? ''}`
    for (let attempt = 0; attempt < 3; attempt++) {
      let grant = this.#grants.get(key)
      if (grant === undefined || grant.dead) {
        if (grant !== undefined) this.#orphans.add(grant)
        grant = this.#grant(request)
        this.#grants.set(key, grant)
      }
      const admitted = this.#admit(grant, request)
      if (admitted !== undefined) return admitted
      if (grant.call !== undefined) {
        await grant.call // someone is asking already: their answer may be enough for us too
        continue
      }
      grant.want = Math.min(this.#host.maxUnits, Math.max(request.cost, grant.want * 2))
      // What is left of this slice is too small for the request: back to the fleet with the call.
      const answer = await this.#call(grant, { want: Math.max(request.cost, grant.want), request, giveBack: true })
      if (answer === undefined) return undefined // Redis failed: the store decides locally
      const retried = this.#admit(grant, request)
      if (retried !== undefined) return retried
      if (answer.lever !== undefined) {
        return { ok: false, lever: answer.lever, remaining: Math.max(0, (answer.remaining ?? 0) + grant.left) }
      }
    }
    return 'exact'
  }

  /** Whether the reservation was admitted from a lease of this process. */
  has(reservation: Reservation): boolean {
    return this.#byReservation.has(reservation)
  }

  /**
   * A running reservation takes \`cost\` more units from its own lease, if that one is still usable
   * and has them (no Redis call); false otherwise: the caller reserves them another way.
   */
  extend(reservation: Reservation, cost: number): boolean {
    const held = this.#byReservation.get(reservation)
    if (held === undefined || !usable(held.grant, cost)) return false
    held.grant.left -= cost
    held.grant.held += cost
    held.units += cost
    reservation.cost += cost
    return true
  }

  /** The request finished and is reported: its units become usage at the next settle. */
  commit(reservation: Reservation, usage: number): boolean {
    const held = this.#byReservation.get(reservation)
    if (held === undefined) return false
    const grant = held.grant
    grant.held -= held.units
    grant.consumed += held.units
    grant.usage += usage
    // Timers run late on a busy event loop: a commit that finds usage waiting too long settles it.
    const now = Date.now()
    if (grant.unsettledSince === 0) grant.unsettledSince = now
    else if (now - grant.unsettledSince >= this.#host.settleMs && grant.call === undefined && !grant.dead) {
      void this.#call(grant, { want: 0 })
    }
    return true
  }

  release(reservation: Reservation): boolean {
    const held = this.#byReservation.get(reservation)
    if (held === undefined) return false
    held.grant.held -= held.units
    held.grant.left += held.units
    return true
  }

  /**
   * Settles every lease's usage into Redis; renews busy leases and gives idle ones back (all of
   * them with `giveBack`, at close).
   */
  async settle(giveBack = false): Promise<void> {
    const now = Date.now()
    const calls: Promise<unknown>[] = []
    for (const orphan of this.#orphans) {
      if (orphan.call !== undefined) continue
      if (orphan.held === 0) this.#orphans.delete(orphan)
      // Its units came back with the TTL; its usage still has to reach Redis (once).
      if (orphan.usage > 0) calls.push(this.#call(orphan, { want: 0 }))
    }
    for (const [key, grant] of this.#grants) {
      if (grant.call !== undefined) {
        calls.push(grant.call)
        continue
      }
      const idle = grant.admitted === 0 && grant.held === 0
      const due = grant.consumed > 0 || grant.usage > 0 || now >= grant.renewAt
      if (!idle && !due && !giveBack) continue
      if (grant.dead) {
        this.#grants.delete(key)
        this.#orphans.add(grant)
        continue
      }
      if (idle || giveBack) {
        // Nothing admitted since the last settle: the unused units go back to the fleet.
        if (grant.held === 0) this.#grants.delete(key)
        calls.push(this.#call(grant, { want: 0, giveBack: true }))
        continue
      }
      // The next slice sized from this interval's rate: a few intervals' worth.
      grant.want = Math.min(this.#host.maxUnits, Math.max(1, grant.admitted * 4))
      grant.admitted = 0
      calls.push(this.#call(grant, { want: 0 }))
    }
    await Promise.allSettled(calls)
  }

  /** Units settled in no Redis call yet (for `pendingUnits`). */
  unsettledUsage(): number {
    let units = 0
    for (const grant of this.#grants.values()) units += grant.usage
    for (const grant of this.#orphans) units += grant.usage
    return units
  }

  #grant(request: ReserveRequest): Grant {
    return {
      tag: tagOf(request.customerId),
      id: this.#host.nextId(),
      ep: undefined,
      customerId: request.customerId,
      meteringId: request.meteringId,
      bucket: request.bucket,
      seq: 0,
      left: 0,
      held: 0,
      consumed: 0,
      usage: 0,
      unsettledSince: 0,
      admitted: 0,
      want: Math.min(this.#host.maxUnits, Math.max(request.cost, 4)),
      usableUntil: 0,
      renewAt: 0,
      call: undefined,
      dead: false,
    }
  }

  #admit(grant: Grant, request: ReserveRequest): ReserveResult | undefined {
    if (!usable(grant, request.cost)) return undefined
    grant.left -= request.cost
    grant.held += request.cost
    grant.admitted++
    const { customerId, meteringId, bucket, cost } = request
    const reservation: Reservation = { customerId, meteringId, bucket, cost }
    this.#byReservation.set(reservation, { grant, units: cost })
    return { ok: true, reservation }
  }

  /** One lease call, applied once in Redis; on failure replayed later, and the grant abandoned. */
  #call(
    grant: Grant,
    options: { want: number; giveBack?: boolean; request?: ReserveRequest },
  ): Promise<LeaseAnswer | undefined> {
    const giveBack = options.giveBack === true ? grant.left : 0
    grant.left -= giveBack
    const request = options.request
    const args = {
      cid: grant.customerId,
      m: grant.meteringId,
      b: grant.bucket,
      cost: 1,
      lims: [] as ReturnType<typeof checkArgs>['lims'],
      sa: 0,
      ra: 0,
      ...(request === undefined ? {} : checkArgs(request)),
      epoch: this.#host.nextId(),
      id: grant.id,
      ep: grant.ep,
      seq: ++grant.seq,
      consumed: grant.consumed,
      usage: grant.usage,
      giveBack,
      want: options.want,
      ttl: this.#host.ttlMs,
    }
    grant.consumed = 0
    grant.usage = 0
    grant.unsettledSince = 0
    const redis = this.#host.redis()
    const sentAt = Date.now()
    const answering = (async () => {
      try {
        await redis.ensureIndexed(grant.tag)
        const answer = await redis.run<LeaseAnswer>('planshipMeterLease', grant.tag, {
          ...args,
          ...this.#host.common(),
        })
        if (answer.due === true) await redis.markDue(grant.tag)
        if (answer.replay !== true) {
          grant.ep = answer.ep
          grant.left += answer.extra ?? 0
          // Redis keeps the units for ttlMs from its answer; stop admitting well before.
          grant.usableUntil = sentAt + this.#host.ttlMs / 2
          grant.renewAt = sentAt + this.#host.ttlMs / 4
        }
        return answer
      } catch (error) {
        // It may or may not have run: replayed once Redis answers (applied at most once), and the
        // grant is abandoned (what it held comes back after the TTL).
        grant.dead = true
        this.#host.replay(grant.tag, args)
        this.#host.failed(error)
        return undefined
      }
    })()
    grant.call = answering.then(() => {
      grant.call = undefined
    })
    return answering
  }
}

/** Whether \`cost\` units can be admitted from the grant now, without asking Redis. */
function usable(grant: Grant, cost: number): boolean {
  return !grant.dead && grant.left >= cost && cost > 0 && Date.now() < grant.usableUntil
}

interface LeaseAnswer {
  extra?: number
  ep?: string
  due?: boolean
  replay?: boolean
  lever?: string
  remaining?: number
}
