import { PlanshipMeterError } from '../errors.js'
import type { Log } from '../log.js'
import { pathSegmentProblem } from '../planship/ids.js'
import type { AbortPolicy } from './response-end.js'

/** Whether a decision can deny: `'enforce'` does, `'shadow'` records what it would deny and lets it through. */
export type Mode = 'enforce' | 'shadow'

/**
 * Per-route options of `consume()`. `A` is what each framework hands the callbacks:
 * `[ctx]` on Koa, `[req, res]` on Express.
 */
export interface RouteConsumeOptions<A extends unknown[]> {
  /** Units reserved before the handler runs: a number or a function of the request. Defaults to `1`. */
  cost?: number | ((...args: A) => number)
  /**
   * Units reported once the response is over (its last byte written, or the client gone): a
   * number or a function read then (rows returned, tokens streamed). Defaults to the units
   * reserved (the cost, plus what `extend()` added).
   */
  usage?: number | ((...args: A) => number)
  /** Bucket the usage is reported under: a string or a function of the request. Defaults to none. */
  bucket?: string | ((...args: A) => string | undefined)
  /** Whether the finished request is reported (else its reservation is released). Defaults to status < 400. */
  shouldReport?: (...args: A) => boolean
  /** This route's `failMode`, when no usable Planship data exists. Defaults to the meter's. */
  failMode?: 'open' | 'closed'
  /** This route's `mode`: `'shadow'` never denies (see the meter option). Defaults to the meter's. */
  mode?: Mode
  /** What a client gone mid-response is billed on this route (see the meter option). Defaults to the meter's. */
  onAbort?: AbortPolicy
}

/** Per-route options of `requireFeature()`. */
export interface FeatureOptions {
  /** This route's `failMode`, when no usable Planship data exists. Defaults to the meter's. */
  failMode?: 'open' | 'closed'
  /** This route's `mode`: `'shadow'` never denies (see the meter option). Defaults to the meter's. */
  mode?: Mode
}

/** A consume route's options, checked once and wrapped so that a bad value answers one request. */
export interface ResolvedConsume<A extends unknown[]> {
  meteringId: string
  cost: (args: A) => number
  usage: (args: A, cost: number) => number
  bucket: (args: A) => string | undefined
  shouldReport: (args: A) => boolean
  failMode: 'open' | 'closed' | undefined
  mode: Mode | undefined
  onAbort: AbortPolicy | undefined
}

export function isUnits(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

export function validateMode(mode: unknown, option = 'mode'): Mode | undefined {
  if (mode !== undefined && mode !== 'enforce' && mode !== 'shadow') {
    throw new TypeError(`planship-meter: option \`${option}\` must be 'enforce' or 'shadow'`)
  }
  return mode
}

export function validateOnAbort(onAbort: unknown): AbortPolicy | undefined {
  if (onAbort !== undefined && onAbort !== 'bill' && onAbort !== 'release') {
    throw new TypeError("planship-meter: option `onAbort` must be 'bill' or 'release'")
  }
  return onAbort
}

function validateFailMode(failMode: unknown): void {
  if (failMode !== undefined && failMode !== 'open' && failMode !== 'closed') {
    throw new TypeError("planship-meter: option `failMode` must be 'open' or 'closed'")
  }
}

/** Checks `requireFeature(lever, options)` at route definition. */
export function validateFeature(lever: string, options: FeatureOptions): void {
  if (typeof lever !== 'string' || lever.length === 0) {
    throw new TypeError('planship-meter: requireFeature(lever) needs a non-empty lever slug')
  }
  validateFailMode(options.failMode)
  validateMode(options.mode)
}

function badRoute(message: string, cause?: unknown): PlanshipMeterError {
  return new PlanshipMeterError('INVALID_REQUEST_OPTION', message, { cause })
}

/**
 * Checks static options at route definition (TypeError) and wraps the dynamic ones.
 * `defaultShouldReport` is the framework's "the response succeeded".
 */
export function validateConsume<A extends unknown[]>(
  meteringId: string,
  options: RouteConsumeOptions<A>,
  log: Log,
  defaultShouldReport: (args: A) => boolean,
): ResolvedConsume<A> {
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
  validateMode(options.mode)
  validateOnAbort(options.onAbort)
  if (shouldReport !== undefined && typeof shouldReport !== 'function') {
    throw new TypeError('planship-meter: option `shouldReport` must be a function')
  }

  return {
    meteringId,
    failMode: options.failMode,
    mode: options.mode,
    onAbort: options.onAbort,
    cost:
      typeof cost === 'number'
        ? () => cost
        : (args) => {
            let value: unknown
            try {
              value = cost(...args)
            } catch (error) {
              throw badRoute(`the cost function of ${meteringId} threw`, error)
            }
            if (!isUnits(value))
              throw badRoute(`the cost function of ${meteringId} returned ${String(value)}, not a non-negative integer`)
            return value
          },
    bucket:
      typeof bucket === 'function'
        ? (args) => {
            let value: unknown
            try {
              value = bucket(...args)
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
        ? (_args, reserved) => reserved
        : typeof usage === 'number'
          ? () => usage
          : (args, reserved) => {
              try {
                const value: unknown = usage(...args)
                if (isUnits(value)) return value
                usageProblem(`returned ${String(value)}, not a non-negative integer`)
              } catch (error) {
                usageProblem(`threw: ${error instanceof Error ? error.message : String(error)}`)
              }
              return reserved
            },
    shouldReport:
      shouldReport === undefined
        ? defaultShouldReport
        : (args) => {
            try {
              return shouldReport(...args) === true
            } catch {
              return true // billing must not silently lose an admitted request
            }
          },
  }
}
