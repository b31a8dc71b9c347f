import { isRetriable, PlanshipMeterError } from '../errors.js'
import type { Clock } from '../types.js'

const BASE_MS = 1_000
const MAX_MS = 30_000

/**
 * Delay before attempt number `failures + 1`: doubling from 1 s up to 30 s, half of it random
 * ("equal jitter") so that many keys failing together do not retry together.
 */
export function backoffMs(failures: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_MS, BASE_MS * 2 ** Math.max(0, failures - 1))
  return ceiling / 2 + random() * (ceiling / 2)
}

/** Delay before retrying a report after `failures` failures in a row: full jitter, 0.5 s doubling to 30 s. */
export function fullJitterMs(failures: number, random: () => number = Math.random): number {
  return random() * Math.min(MAX_MS, 500 * 2 ** Math.max(0, failures - 1))
}

/**
 * Shared by every Planship read: after an outage-like failure (network, timeout, 429, 5xx,
 * auth) no read is sent for a backoff that grows with consecutive failures, so a Planship that
 * is down sees about one call per backoff, not one per customer. Any success closes it.
 */
export class CircuitBreaker {
  readonly #clock: Clock
  #failures = 0
  #openUntil = 0
  #probing = false
  #lastError: unknown

  constructor(clock: Clock) {
    this.#clock = clock
  }

  /** Whether a call may go out now (without claiming it). */
  closed(): boolean {
    return this.#failures === 0 || (!this.#probing && this.#clock.now() >= this.#openUntil)
  }

  /**
   * Claims the right to call: `undefined` when the call may go out, else the error to fail
   * with. After an outage-like failure, one probe at a time tests whether Planship is back.
   */
  begin(): unknown {
    if (this.#failures === 0) return undefined
    if (this.#probing || this.#clock.now() < this.#openUntil) return this.#lastError
    this.#probing = true
    return undefined
  }

  /**
   * For metrics: `closed` (calls go out), `open` (calls fail at once until the backoff ends) or
   * `half_open` (the backoff ended: the next call, or the one in flight, is the probe).
   */
  state(): 'closed' | 'open' | 'half_open' {
    if (this.#failures === 0) return 'closed'
    return this.#probing || this.#clock.now() >= this.#openUntil ? 'half_open' : 'open'
  }

  success(): void {
    this.#failures = 0
    this.#openUntil = 0
    this.#probing = false
  }

  failure(error: unknown): void {
    // A call refused before sending (an id that cannot be a path) says nothing about Planship.
    if (error instanceof PlanshipMeterError && error.code === 'INVALID_CUSTOMER_ID') {
      this.#probing = false
      return
    }
    // An answer such as 404 means Planship is up.
    if (!isRetriable(error)) return this.success()
    this.#probing = false
    this.#failures++
    this.#lastError = error
    this.#openUntil = this.#clock.now() + backoffMs(this.#failures)
  }
}
