import type { Context, Middleware, Next } from 'koa'
import type { Enforcer } from '../enforcement/enforcer.js'
import { isPromiseLike, type MaybePromise } from '../enforcement/store.js'
import { PlanshipMeterError } from '../errors.js'
import type { EventSink } from '../events.js'
import type { Log } from '../log.js'
import type { Denial, MeterOptions } from '../options.js'
import { pathSegmentProblem } from '../planship/ids.js'
import { toDenial, unidentified, writeDenial, writeDenialHead } from './denial.js'
import type { DecisionRecord, PlanshipRequestState, PlanshipState } from './state.js'

/** Per-route options of `consume()`. */
export interface ConsumeOptions {
  /** Units reserved before the handler runs: a number or `(ctx) => number`. Defaults to `1`. */
  cost?: number | ((ctx: Context) => number)
  /**
   * Units reported after the handler ran: a number or `(ctx) => number` read after the handler
   * (rows returned, say). Defaults to the cost.
   */
  usage?: number | ((ctx: Context) => number)
  /** Bucket the usage is reported under: a string or `(ctx) => string | undefined`. Defaults to none. */
  bucket?: string | ((ctx: Context) => string | undefined)
  /** Whether the finished request is reported (else its reservation is released). Defaults to `ctx.status < 400`. */
  shouldReport?: (ctx: Context) => boolean
  /** This route's `failMode`, when no usable Planship data exists. Defaults to the meter's. */
  failMode?: 'open' | 'closed'
}

/** Per-route options of `requireFeature()`. */
export interface FeatureOptions {
  /** This route's `failMode`, when no usable Planship data exists. Defaults to the meter's. */
  failMode?: 'open' | 'closed'
}

function validateFailMode(failMode: unknown): void {
  if (failMode !== undefined && failMode !== 'open' && failMode !== 'closed') {
    throw new TypeError("planship-meter: option `failMode` must be 'open' or 'closed'")
  }
}

export interface KoaAdapterConfig {
  identify: MeterOptions['identify']
  onDenied: MeterOptions['onDenied']
  enforcer: Enforcer
  log: Log
  emit: EventSink | undefined
}

type Ctx = Context & { state: PlanshipState }

/** The thin Koa layer over the enforcer: identify, consume, requireFeature. */
export function createKoaAdapter(config: KoaAdapterConfig) {
  const { enforcer, log, emit } = config
  const deny = async (ctx: Context, denial: Denial): Promise<void> => {
    emit?.({ type: 'denial', denial })
    if (config.onDenied === undefined) return writeDenial(ctx, denial)
    // A custom answer that only writes a body still answers with the denial's status and headers.
    writeDenialHead(ctx, denial)
    await config.onDenied(ctx, denial)
  }
  const record = (state: PlanshipRequestState, customerId: string, decision: DecisionRecord, cost?: number): void => {
    state.decisions.push(decision)
    emit?.({ type: 'decision', customerId, ...decision, cost })
  }

  /** The request's identification, done once per request; synchronous when `identify` is. */
  function identify(ctx: Ctx): MaybePromise<PlanshipRequestState> {
    if (ctx.state.planship !== undefined) return ctx.state.planship
    let raw: unknown
    try {
      raw = config.identify(ctx)
    } catch (error) {
      throw identifyFailed(error, log)
    }
    if (isPromiseLike(raw))
      return raw.then(
        (value: unknown) => identified(ctx, value),
        (error: unknown) => Promise.reject(identifyFailed(error, log)),
      )
    return identified(ctx, raw)
  }

  function identified(ctx: Ctx, raw: unknown): PlanshipRequestState {
    const state: PlanshipRequestState = { customerId: validCustomerId(raw, log), decisions: [] }
    ctx.state.planship = state
    return state
  }

  return {
    middleware(): Middleware<PlanshipState> {
      // Not async: with a synchronous identify, this layer adds no promise of its own.
      return function planshipIdentify(ctx, next) {
        const state = identify(ctx as Ctx)
        return isPromiseLike(state) ? Promise.resolve(state).then(() => next()) : next()
      }
    },

    consume(meteringId: string, options: ConsumeOptions = {}): Middleware<PlanshipState> {
      const route = validateConsume(meteringId, options, log)
      // Awaits only what is really asynchronous: on a warm cache the decision is synchronous.
      return async function planshipConsume(ctx: Ctx, next: Next) {
        const identifying = identify(ctx)
        const state = isPromiseLike(identifying) ? await identifying : identifying
        const customerId = state.customerId
        if (customerId === undefined) return deny(ctx, unidentified())
        const cost = route.cost(ctx)
        const bucket = route.bucket(ctx)
        const deciding = enforcer.consume({ customerId, meteringId, bucket, cost, failMode: options.failMode })
        const decision = isPromiseLike(deciding) ? await deciding : deciding
        if (!decision.allowed) {
          const lever = 'lever' in decision.denied ? decision.denied.lever : undefined
          const denied: DecisionRecord = {
            kind: 'consume',
            subject: meteringId,
            allowed: false,
            source: decision.source,
          }
          if (lever !== undefined) denied.lever = lever
          record(state, customerId, denied, cost)
          return deny(ctx, toDenial(decision.denied, customerId, meteringId))
        }
        record(
          state,
          customerId,
          { kind: 'consume', subject: meteringId, allowed: true, source: decision.source },
          cost,
        )

        const reservation = decision.reservation
        try {
          await next()
        } catch (error) {
          await enforcer.release(reservation)
          throw error
        }
        const settling = route.shouldReport(ctx)
          ? enforcer.commit(reservation, route.usage(ctx, cost))
          : enforcer.release(reservation)
        if (isPromiseLike(settling)) await settling
      }
    },

    requireFeature(lever: string, options: FeatureOptions = {}): Middleware<PlanshipState> {
      if (typeof lever !== 'string' || lever.length === 0) {
        throw new TypeError('planship-meter: requireFeature(lever) needs a non-empty lever slug')
      }
      validateFailMode(options.failMode)
      return async function planshipRequireFeature(ctx: Ctx, next: Next) {
        const identifying = identify(ctx)
        const state = isPromiseLike(identifying) ? await identifying : identifying
        const customerId = state.customerId
        if (customerId === undefined) return deny(ctx, unidentified())
        const deciding = enforcer.requireFeature(customerId, lever, options.failMode)
        const decision = isPromiseLike(deciding) ? await deciding : deciding
        record(state, customerId, {
          kind: 'feature',
          subject: lever,
          allowed: decision.allowed,
          source: decision.source,
          lever,
        })
        if (!decision.allowed) return deny(ctx, toDenial(decision.denied, customerId, lever))
        return next()
      }
    },
  }
}

function identifyFailed(error: unknown, log: Log): PlanshipMeterError {
  const message = error instanceof Error ? error.message : String(error)
  log.throttled('error', `identify:${message}`, `the identify option threw: ${message}`)
  return new PlanshipMeterError('IDENTIFY_FAILED', `The identify option threw: ${message}`, { cause: error })
}

/**
 * The identified customer id, or `undefined` (401) when the value cannot be sent to Planship as
 * exactly one path segment: such a request must be neither admitted nor billed.
 */
function validCustomerId(raw: unknown, log: Log): string | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined
  const problem = pathSegmentProblem(raw)
  if (problem === undefined) return raw as string
  log.throttled(
    'warn',
    `identify:${problem}`,
    `identify returned a value that cannot be a Planship customer id (it ${problem}); treating the request as unidentified`,
  )
  return undefined
}

interface ResolvedConsume {
  cost: (ctx: Context) => number
  usage: (ctx: Context, cost: number) => number
  bucket: (ctx: Context) => string | undefined
  shouldReport: (ctx: Context) => boolean
}

function isUnits(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function badRoute(message: string, cause?: unknown): PlanshipMeterError {
  return new PlanshipMeterError('INVALID_REQUEST_OPTION', message, { cause })
}

/** Checks static options at route definition (TypeError) and wraps the dynamic ones. */
function validateConsume(meteringId: string, options: ConsumeOptions, log: Log): ResolvedConsume {
  const usageProblem = (problem: string) =>
    log.throttled(
      'error',
      `usage:${meteringId}:${problem}`,
      `the usage function of ${meteringId} ${problem}; reporting the admitted cost instead`,
    )
  if (pathSegmentProblem(meteringId) !== undefined) {
    throw new TypeError('planship-meter: consume(meteringId) needs a metering id (one URL path segment)')
  }
  const { cost = 1, usage, bucket, shouldReport } = options
  if (typeof cost !== 'function' && !isUnits(cost)) {
    throw new TypeError('planship-meter: option `cost` must be a non-negative integer or a function')
  }
  if (usage !== undefined && typeof usage !== 'function' && !isUnits(usage)) {
    throw new TypeError('planship-meter: option `usage` must be a non-negative integer or a function')
  }
  if (bucket !== undefined && typeof bucket !== 'function' && (typeof bucket !== 'string' || bucket.length === 0)) {
    throw new TypeError('planship-meter: option `bucket` must be a non-empty string or a function')
  }
  validateFailMode(options.failMode)
  if (shouldReport !== undefined && typeof shouldReport !== 'function') {
    throw new TypeError('planship-meter: option `shouldReport` must be a function')
  }

  return {
    cost:
      typeof cost === 'number'
        ? () => cost
        : (ctx) => {
            let value: unknown
            try {
              value = cost(ctx)
            } catch (error) {
              throw badRoute(`the cost function of ${meteringId} threw`, error)
            }
            if (!isUnits(value))
              throw badRoute(`the cost function of ${meteringId} returned ${String(value)}, not a non-negative integer`)
            return value
          },
    bucket:
      typeof bucket === 'function'
        ? (ctx) => {
            let value: unknown
            try {
              value = bucket(ctx)
            } catch (error) {
              throw badRoute(`the bucket function of ${meteringId} threw`, error)
            }
            if (value === undefined || value === null || value === '') return undefined
            if (typeof value !== 'string')
              throw badRoute(`the bucket function of ${meteringId} returned a ${typeof value}, not a string`)
            return value
          }
        : () => bucket,
    // Read after the handler: a failure here cannot change the response any more, so the
    // admitted cost is reported instead and the problem logged.
    usage:
      usage === undefined
        ? (_ctx, reserved) => reserved
        : typeof usage === 'number'
          ? () => usage
          : (ctx, reserved) => {
              try {
                const value: unknown = usage(ctx)
                if (isUnits(value)) return value
                usageProblem(`returned ${String(value)}, not a non-negative integer`)
              } catch (error) {
                usageProblem(`threw: ${error instanceof Error ? error.message : String(error)}`)
              }
              return reserved
            },
    shouldReport:
      shouldReport === undefined
        ? (ctx) => ctx.status < 400
        : (ctx) => {
            try {
              return shouldReport(ctx) === true
            } catch {
              return true // billing must not silently lose an admitted request
            }
          },
  }
}
