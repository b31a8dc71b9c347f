import type { DecisionSource } from './enforcement/enforcer.js'
import type { PendingReport } from './enforcement/store.js'
import type { Denial } from './types.js'
import type { FlushResult } from './reporting/reporter.js'

/**
 * What the meter tells `onEvent`, for metrics and logs. Errors come as messages of our own,
 * which never contain the client secret or a token.
 */
export type MeterEvent =
  | {
      type: 'decision'
      kind: 'consume' | 'feature'
      customerId: string
      /** The metering id (consume) or lever (feature). */
      subject: string
      allowed: boolean
      source: DecisionSource
      /** The lever that decided, when one did. */
      lever?: string
      /** Units the consume asked to reserve (reserved when allowed). */
      cost?: number
      /** Shadow mode: `allowed` is what enforcement would have decided; the request went through. */
      shadow?: true
    }
  /** A request denied, or in shadow mode (`shadow: true`) one that would have been and went through. */
  | { type: 'denial'; denial: Denial; shadow?: true }
  | { type: 'flush'; result: Omit<FlushResult, 'rejected'> }
  | { type: 'retry'; report: PendingReport; error: string; retryAt: number }
  | {
      type: 'drop'
      report: PendingReport
      /** Refused by Planship, not resent at most once, or still undelivered when close() gave up. */
      reason: 'rejected' | 'possibly-lost' | 'undelivered'
      error?: string
    }
  | { type: 'error'; message: string; error: string }
  /**
   * A request or reservation billed more than it had reserved: the work happened, so the usage
   * is billed as measured, `over` units above `reserved`.
   */
  | {
      type: 'overage'
      customerId: string
      meteringId: string
      bucket?: string
      reserved: number
      usage: number
      over: number
    }
  /**
   * A customer's usage of a lever reached `threshold` (a fraction of `limit`, from the `alerts`
   * option): reserved and reported units, `used` of `limit`. Once per customer × lever ×
   * threshold × period; with a shared store, once for the whole fleet.
   */
  | { type: 'threshold'; customerId: string; lever: string; threshold: number; used: number; limit: number }
  /** A configuration problem found at run time (a metering id that feeds no lever …), once each. */
  | { type: 'misconfiguration'; problem: 'unknown-metering-id'; message: string; meteringId: string }

  /**
   * A shared store (Redis) stopped answering (`'local'`: decisions from this process's memory)
   * or answers again (`'shared'`). One event per change.
   */
  | { type: 'store'; state: 'local' | 'shared'; message: string; error?: string }

export type EventSink = (event: MeterEvent) => void

/** What a decision event says besides its customer and cost: a request's `DecisionRecord`. */
export type DecisionFields = Omit<Extract<MeterEvent, { type: 'decision' }>, 'type' | 'customerId' | 'cost'>

/** Takes each decision as it is made (telemetry, `onEvent`); see `decisionSink`. */
export type DecisionSink = (customerId: string, record: DecisionFields, cost: number | undefined) => void

/** Calls the user's listener; a listener that throws never breaks a request or a flush. */
export function eventSink(listener: ((event: MeterEvent) => void) | undefined): EventSink | undefined {
  if (listener === undefined) return undefined
  return (event) => {
    try {
      listener(event)
    } catch {
      // A metrics hook must not take the API down with it.
    }
  }
}
