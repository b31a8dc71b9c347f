import { isPromiseLike, type MaybePromise, type Reservation } from '../enforcement/store.js'
import type { ServerResponse } from 'node:http'
import type { Gate } from './gate.js'
import { clientGone } from './response-end.js'
import { isUnits, type Mode } from './route.js'
import type { DecisionRecord } from './state.js'

/**
 * The units a request (or a neutral `reserve()`) holds while its work runs, and the way to hold
 * more: `ctx.state.planship.reservations[meteringId]` on Koa, `res.locals.planship…` on Express.
 */
export interface MeteredReservation {
  /** Units held so far: the admitted cost plus every `extend()` that resolved `true`. */
  readonly reserved: number
  /**
   * Reserves `units` more, atomically against every lever the metering id feeds, with the same
   * store and strictness as admission. Resolves `true` when they were added, `false` with
   * nothing reserved when they do not fit or the work is already over (the response ended, its
   * client left, the reservation settled). Rejects with a `TypeError` for units that are not a non-negative integer.
   * In shadow mode it resolves `true` and records what enforcement would have decided.
   */
  extend(units: number): Promise<boolean>
}

/** What a hold decides with: the route's (or call's) own `failMode` and `mode`. */
export interface HoldOptions {
  failMode?: 'open' | 'closed' | undefined
  mode?: Mode | undefined
}

/**
 * A reservation being held: extended while the work runs, settled once when it is over. A
 * settle waits for an `extend()` still deciding, so that the units it adds settle too.
 */
export class ReservationHold implements MeteredReservation {
  readonly #gate: Gate
  readonly #reservation: Reservation | undefined
  readonly #decisions: DecisionRecord[] | undefined
  readonly #options: HoldOptions
  /** The response the units are for, if any: once its client is gone, nothing more is held. */
  readonly #response: ServerResponse | undefined
  #open = true
  /** Extensions still deciding (a shared store answers later). */
  #extending: Promise<unknown> | undefined

  constructor(
    gate: Gate,
    reservation: Reservation | undefined,
    options: HoldOptions,
    decisions?: DecisionRecord[],
    response?: ServerResponse,
  ) {
    this.#response = response
    this.#gate = gate
    this.#reservation = reservation
    this.#options = options
    this.#decisions = decisions
  }

  /** A shadow pass that keeps nothing (a customer Planship cannot be billed for) holds nothing. */
  get reserved(): number {
    return this.#reservation?.cost ?? 0
  }

  /** Whether the work is still running: not settled yet. */
  get open(): boolean {
    return this.#open
  }

  extend(units: number): Promise<boolean> {
    if (!isUnits(units))
      return Promise.reject(new TypeError('planship-meter: extend(units) needs a non-negative integer'))
    if (!this.#open || (this.#response !== undefined && clientGone(this.#response))) return Promise.resolve(false)
    if (this.#reservation === undefined) return Promise.resolve(true)
    let deciding: MaybePromise<boolean>
    try {
      deciding = this.#gate.extend(this.#decisions, this.#reservation, units, this.#options)
    } catch (error) {
      return Promise.reject(error) // a store that throws: extend() rejects, as it is asynchronous
    }
    if (!isPromiseLike(deciding)) return Promise.resolve(deciding)
    const extending = Promise.resolve(deciding)
    const all = Promise.all([this.#extending, extending])
    this.#extending = all
    // Both outcomes handled here: a store that rejects reaches the caller of extend(), never
    // an unhandled rejection of ours.
    const done = () => {
      if (this.#extending === all) this.#extending = undefined
    }
    all.then(done, done)
    return extending
  }

  /**
   * The work is over: `usage` is billed (`undefined`: the reservation is returned). Only the
   * first call counts.
   */
  settle(usage: number | undefined): MaybePromise<void> {
    if (!this.#open) return
    this.#open = false
    const extending = this.#extending
    if (extending === undefined) return this.#gate.settle(this.#reservation, usage)
    return extending.then(
      () => this.#gate.settle(this.#reservation, usage),
      () => this.#gate.settle(this.#reservation, usage),
    )
  }
}
