import type {
  ConsumeDecision,
  ConsumeRequest,
  DecisionSource,
  Enforcer,
  FeatureDecision,
} from '../enforcement/enforcer.js'
import { isPromiseLike, type MaybePromise, type Reservation } from '../enforcement/store.js'
import type { DecisionSink, EventSink } from '../events.js'
import type { Clock, Denial } from '../types.js'
import { toDenial, unidentified } from './denial.js'
import { type HeaderStyle, rateLimitHeaders, type Reset } from './headers.js'
import type { HoldOptions } from './reservation.js'
import type { AbortPolicy } from './response-end.js'
import type { FeatureOptions, Mode, ResolvedConsume } from './route.js'
import type { DecisionRecord, PlanshipRequestState } from './state.js'

/** When a lever's allowance comes back, from cached data; unknown ones are learned in the background. */
export interface Resets {
  /** `learn`: a denial may have customer data read in the background; an admission never does. */
  of(customerId: string, lever: string, learn: boolean): Reset | undefined
  /** A read in flight of what `of` needs for `lever` and does not know yet. */
  learning(lever: string): Promise<void> | undefined
}

export interface GateConfig {
  enforcer: Enforcer
  emit: EventSink | undefined
  /** Takes every decision (telemetry, `onEvent`); `undefined` when nothing listens. */
  decided: DecisionSink | undefined
  mode: Mode
  headers: HeaderStyle
  resets: Resets | undefined
  clock: Clock
  /** The meter's `onAbort`; `undefined` is the default rule. */
  onAbort: AbortPolicy | undefined
}

/** What a framework adapter (or the neutral API) does with a request. */
export type Verdict =
  | {
      allowed: true
      /** What to settle after the work: commit or release. None for a feature check or a shadow pass-through that keeps nothing. */
      reservation: Reservation | undefined
      /** Rate-limit headers for the response, when a lever limits it. */
      headers: Record<string, string> | undefined
    }
  | { allowed: false; denial: Denial }

export interface ConsumeCall {
  meteringId: string
  bucket: string | undefined
  cost: number
  failMode?: 'open' | 'closed' | undefined
  mode?: Mode | undefined
}

const PASS: Verdict = { allowed: true, reservation: undefined, headers: undefined }

/** Metering ids and levers whose shared admission records are kept (they are few: one per route). */
const MAX_SHARED_RECORDS = 1_000

/**
 * The decisions every adapter takes, in framework-neutral terms: decide, record and emit, turn
 * a refusal into the contract's denial (or, in shadow mode, into a pass), compute the headers.
 * Synchronous whenever the enforcer is (the warm path).
 */
export function createGate(config: GateConfig) {
  const { enforcer, emit, decided } = config
  const style = config.headers
  /**
   * An admission's record is the same for every request of a metering id (or lever) and source:
   * one frozen record each, shared by the requests' `decisions` (a denial's is built per request).
   */
  const admissions = new Map<string, Partial<Record<DecisionSource, DecisionRecord>>>()
  function admission(kind: 'consume' | 'feature', subject: string, source: DecisionSource): DecisionRecord {
    const id = kind === 'consume' ? subject : `\u0000${subject}`
    let bySource = admissions.get(id)
    if (bySource === undefined) {
      if (admissions.size >= MAX_SHARED_RECORDS) admissions.clear()
      admissions.set(id, (bySource = {}))
    }
    return (bySource[source] ??= Object.freeze(
      kind === 'consume'
        ? { kind, subject, allowed: true, source }
        : { kind, subject, allowed: true, source, lever: subject },
    ))
  }

  function headersOf(customerId: string, lever: string, remaining: number, limit: number | undefined, denied: boolean) {
    const reset = config.resets?.of(customerId, lever, denied)
    const headers = rateLimitHeaders(style, lever, remaining, limit, reset, config.clock.now())
    if (denied && reset?.resetSeconds !== undefined) headers['Retry-After'] = String(reset.resetSeconds)
    return headers
  }

  const denialHeaders = (customerId: string) => (lever: string, remaining: number, limit: number | undefined) =>
    headersOf(customerId, lever, remaining, limit, true)

  function record(
    decisions: DecisionRecord[] | undefined,
    customerId: string,
    decision: DecisionRecord,
    cost?: number,
  ): void {
    decisions?.push(decision)
    decided?.(customerId, decision, cost)
  }

  /** A refusal: denied, or in shadow mode recorded as such and let through. */
  function refuse(denial: Denial, shadow: boolean): Verdict {
    if (!shadow) {
      emit?.({ type: 'denial', denial })
      return { allowed: false, denial }
    }
    emit?.({ type: 'denial', denial, shadow: true })
    const headers = { ...denial.headers }
    delete headers['Retry-After'] // the request goes through: there is nothing to retry
    return { allowed: true, reservation: undefined, headers: Object.keys(headers).length > 0 ? headers : undefined }
  }

  function consumed(
    decisions: DecisionRecord[] | undefined,
    customerId: string,
    call: ConsumeCall,
    decision: ConsumeDecision,
  ): MaybePromise<Verdict> {
    const shadow = (call.mode ?? config.mode) === 'shadow'
    if (decision.allowed) {
      record(decisions, customerId, admission('consume', call.meteringId, decision.source), call.cost)
      const room = decision.room
      const headers =
        style === false || room === undefined
          ? undefined
          : headersOf(customerId, room.lever, room.remaining, room.limit, false)
      return { allowed: true, reservation: decision.reservation, headers }
    }
    record(decisions, customerId, consumeDenied(call.meteringId, decision, shadow), call.cost)
    const verdict = refuse(toDenial(decision.denied, customerId, call.meteringId, denialHeaders(customerId)), shadow)
    // Shadow mode bills what it lets through, as enforcement would have; a customer id that
    // cannot be sent to Planship, or one Planship does not know (it would refuse the report),
    // is never billed.
    const unknownCustomer = decision.denied.reason === 'quota' && decision.denied.lever === undefined
    if (!verdict.allowed || decision.denied.reason === 'unidentified' || unknownCustomer) return verdict
    const key = { customerId, meteringId: call.meteringId, bucket: call.bucket }
    const reserving = enforcer.reserveUnchecked(key, call.cost)
    return isPromiseLike(reserving)
      ? Promise.resolve(reserving).then((reservation) => ({ ...verdict, reservation }))
      : { ...verdict, reservation: reserving }
  }

  function featured(
    decisions: DecisionRecord[] | undefined,
    customerId: string,
    lever: string,
    mode: Mode | undefined,
    decision: FeatureDecision,
  ): Verdict {
    if (decision.allowed) {
      record(decisions, customerId, admission('feature', lever, decision.source))
      return PASS
    }
    const shadow = (mode ?? config.mode) === 'shadow'
    const entry: DecisionRecord = {
      kind: 'feature',
      subject: lever,
      allowed: decision.allowed,
      source: decision.source,
      lever,
      ...(shadow && { shadow: true as const }),
    }
    record(decisions, customerId, entry)
    return refuse(toDenial(decision.denied, customerId, lever, denialHeaders(customerId)), shadow)
  }

  const unidentifiedVerdict = (mode: Mode | undefined): Verdict =>
    refuse(unidentified(), (mode ?? config.mode) === 'shadow')

  return {
    /** A request on a `consume()` route: 401 (a pass in shadow mode) without a customer, else the decision. */
    route<A extends unknown[]>(state: PlanshipRequestState, route: ResolvedConsume<A>, args: A): MaybePromise<Verdict> {
      if (state.customerId === undefined) return unidentifiedVerdict(route.mode)
      return decide(state.decisions, {
        customerId: state.customerId,
        meteringId: route.meteringId,
        cost: route.cost(args),
        bucket: route.bucket(args),
        failMode: route.failMode,
        mode: route.mode,
        room: style !== false,
      })
    },

    /** A request on a `requireFeature()` route. */
    feature(state: PlanshipRequestState, lever: string, options: FeatureOptions): MaybePromise<Verdict> {
      if (state.customerId === undefined) return unidentifiedVerdict(options.mode)
      return requireFeature(state.decisions, state.customerId, lever, options)
    },

    consume,
    requireFeature,

    /** A route's `onAbort`, else the meter's. */
    onAbort<A extends unknown[]>(route: ResolvedConsume<A>): AbortPolicy | undefined {
      return route.onAbort ?? config.onAbort
    },

    /**
     * Settles an admitted request: its usage is reported, or its reservation returned. Usage
     * above the reservation is billed as measured (the work happened) and said as an overage.
     */
    settle(reservation: Reservation | undefined, usage: number | undefined): MaybePromise<void> {
      if (reservation === undefined) return
      if (usage === undefined) return enforcer.release(reservation)
      if (usage > reservation.cost && emit !== undefined) {
        const { customerId, meteringId, bucket, cost } = reservation
        const over = usage - cost
        emit({
          type: 'overage',
          customerId,
          meteringId,
          ...(bucket !== undefined && { bucket }),
          reserved: cost,
          usage,
          over,
        })
      }
      return enforcer.commit(reservation, usage)
    },

    extend,
  }

  /**
   * `units` more for a running reservation, decided as admission decides: `true` when they were
   * added. In shadow mode a refusal is recorded and the units are added all the same.
   */
  function extend(
    decisions: DecisionRecord[] | undefined,
    reservation: Reservation,
    units: number,
    options: HoldOptions,
  ): MaybePromise<boolean> {
    const { customerId, meteringId, bucket } = reservation
    const call = { customerId, meteringId, bucket, cost: units, failMode: options.failMode, mode: options.mode }
    const deciding = enforcer.consume({ ...call, extending: reservation })
    const decided = (decision: ConsumeDecision): MaybePromise<boolean> => {
      if (decision.allowed) {
        record(decisions, customerId, admission('consume', meteringId, decision.source), units)
        return true
      }
      const shadow = (options.mode ?? config.mode) === 'shadow'
      record(decisions, customerId, consumeDenied(meteringId, decision, shadow), units)
      refuse(toDenial(decision.denied, customerId, meteringId, denialHeaders(customerId)), shadow)
      if (!shadow) return false
      const reserving = enforcer.reserveUnchecked({ customerId, meteringId, bucket }, units, reservation)
      return isPromiseLike(reserving)
        ? Promise.resolve(reserving).then((held) => held !== undefined)
        : reserving !== undefined
    }
    return isPromiseLike(deciding) ? Promise.resolve(deciding).then(decided) : decided(deciding)
  }

  function consume(
    decisions: DecisionRecord[] | undefined,
    customerId: string,
    call: ConsumeCall,
  ): MaybePromise<Verdict> {
    const { meteringId, bucket, cost, failMode, mode } = call
    return decide(decisions, { customerId, meteringId, cost, bucket, failMode, mode, room: style !== false })
  }

  /** One object per request, from the route to the store: the enforcer's request is the call. */
  function decide(decisions: DecisionRecord[] | undefined, call: ConsumeRequest & ConsumeCall): MaybePromise<Verdict> {
    const deciding = enforcer.consume(call)
    return isPromiseLike(deciding)
      ? Promise.resolve(deciding).then((decision) => afterReset(decisions, call, decision))
      : afterReset(decisions, call, deciding)
  }

  /** The first decision about a lever waits for its reset to be read, once: its headers are then complete. */
  function afterReset(
    decisions: DecisionRecord[] | undefined,
    call: ConsumeRequest & ConsumeCall,
    decision: ConsumeDecision,
  ): MaybePromise<Verdict> {
    const lever = decision.allowed
      ? decision.room?.lever
      : 'lever' in decision.denied
        ? decision.denied.lever
        : undefined
    const learning = lever === undefined ? undefined : config.resets?.learning(lever)
    if (learning === undefined) return consumed(decisions, call.customerId, call, decision)
    return learning.then(() => consumed(decisions, call.customerId, call, decision))
  }

  function requireFeature(
    decisions: DecisionRecord[] | undefined,
    customerId: string,
    lever: string,
    options: HoldOptions,
  ): MaybePromise<Verdict> {
    const deciding = enforcer.requireFeature(customerId, lever, options.failMode)
    return isPromiseLike(deciding)
      ? Promise.resolve(deciding).then((decision) => featured(decisions, customerId, lever, options.mode, decision))
      : featured(decisions, customerId, lever, options.mode, deciding)
  }
}

export type Gate = ReturnType<typeof createGate>

/** A refused consume's record (built per request: admissions share theirs). */
function consumeDenied(
  meteringId: string,
  decision: Extract<ConsumeDecision, { allowed: false }>,
  shadow: boolean,
): DecisionRecord {
  const lever = 'lever' in decision.denied ? decision.denied.lever : undefined
  return {
    kind: 'consume',
    subject: meteringId,
    allowed: false,
    source: decision.source,
    ...(lever !== undefined && { lever }),
    ...(shadow && { shadow: true as const }),
  }
}
