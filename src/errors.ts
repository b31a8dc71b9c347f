/**
 * Stable error codes of planship-meter. Codes never change meaning between versions;
 * messages may be reworded.
 */
export type PlanshipMeterErrorCode =
  /** Planship answered with a non-2xx status (see `status` and `detail`). */
  | 'PLANSHIP_HTTP_ERROR'
  /** The token endpoint refused the client credentials. */
  | 'PLANSHIP_AUTH_FAILED'
  /** Planship could not be reached (DNS, refused connection, reset). */
  | 'PLANSHIP_UNREACHABLE'
  /** Planship did not answer within `planship.timeoutMs`. */
  | 'PLANSHIP_TIMEOUT'
  /**
   * Planship answered 2xx with a body that is not the JSON shape the API documents, with values
   * the API cannot mean (a metered entitlement of `"lots"`), or larger than `planship.maxResponseBytes`.
   */
  | 'PLANSHIP_BAD_RESPONSE'
  /** Planship does not know `productSlug` (or the credentials' organization has no such product): a configuration error. */
  | 'PLANSHIP_PRODUCT_NOT_FOUND'
  /** A customer id that cannot be sent as one path segment (`..`, a lone surrogate …); nothing was sent. */
  | 'INVALID_CUSTOMER_ID'
  /** The `identify` option threw or rejected. */
  | 'IDENTIFY_FAILED'
  /** A `cost`, `usage` or `bucket` function threw or returned an invalid value. */
  | 'INVALID_REQUEST_OPTION'
  /** `flush()` could not deliver every pending report; the rest stays queued. */
  | 'FLUSH_INCOMPLETE'
  /** The meter was used after `close()`. */
  | 'METER_CLOSED'
  /** `reporting.maxPendingKeys` keys wait for delivery: a request adding a key was refused. */
  | 'USAGE_BACKLOG_FULL'
  /** The shared store (Redis) did not answer within its `commandTimeoutMs`, or was not connected. */
  | 'STORE_TIMEOUT'
  /** A shared store was used before `createMeter` bound it (pass it as the `store` option). */
  | 'STORE_NOT_BOUND'

/** Options for {@link PlanshipMeterError}. */
export interface PlanshipMeterErrorOptions {
  cause?: unknown
  /** HTTP status of the Planship answer, when there was one. */
  status?: number
  /** Planship's `detail` field, when the answer had one. */
  detail?: unknown
  /** How long Planship asked to wait (its `Retry-After`), in ms. */
  retryAfterMs?: number
}

/**
 * The one error class of planship-meter. Branch on `code`, never on `message`.
 * Messages never contain the client secret or an access token.
 */
export class PlanshipMeterError extends Error {
  override name = 'PlanshipMeterError'
  readonly code: PlanshipMeterErrorCode
  readonly status: number | undefined
  readonly detail: unknown
  readonly retryAfterMs: number | undefined

  constructor(code: PlanshipMeterErrorCode, message: string, options: PlanshipMeterErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.status = options.status
    this.detail = options.detail
    this.retryAfterMs = options.retryAfterMs
  }
}

/** Failures of a step before the call itself (getting a token): nothing was sent. */
const beforeSending = new WeakSet<object>()

/** Marks `error` as raised before the request was sent; returns it. */
export function failedBeforeSending<E>(error: E): E {
  if (typeof error === 'object' && error !== null) beforeSending.add(error)
  return error
}

/** Errors that say the request never reached Planship, so it cannot have been applied. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])

/**
 * Whether a failed call may nevertheless have been applied by Planship: a timeout, a reset, a
 * 500 or a 504 after the request was sent. A refused connection, 401, 403, 408, 429, and 502 or
 * 503 (a gateway or an overloaded Planship turning the request away) were not applied.
 */
export function mayHaveBeenApplied(error: unknown): boolean {
  if (typeof error === 'object' && error !== null && beforeSending.has(error)) return false
  if (!(error instanceof PlanshipMeterError)) return true
  if (error.code === 'PLANSHIP_TIMEOUT') return true
  if (error.code === 'PLANSHIP_UNREACHABLE') return !NOT_SENT.has(errnoOf(error.cause) ?? '')
  if (error.code === 'PLANSHIP_HTTP_ERROR')
    return (error.status ?? 0) >= 500 && error.status !== 502 && error.status !== 503
  return false
}

/**
 * What a network failure was, for messages: the code and the address when the error says them
 * (`ECONNREFUSED 127.0.0.1:1234`), else the host of `baseUrl`.
 */
export function networkFailure(error: unknown, baseUrl: string): string {
  const code = errnoOf(error)
  let address: string | undefined
  for (let cause = error, depth = 0; cause !== undefined && depth < 5; depth++) {
    if (typeof cause !== 'object' || cause === null) break
    const { address: host, port } = cause as { address?: unknown; port?: unknown }
    if (typeof host === 'string') {
      address = typeof port === 'number' ? `${host}:${port}` : host
      break
    }
    cause = 'cause' in cause ? cause.cause : undefined
  }
  address ??= URL.canParse(baseUrl) ? new URL(baseUrl).host : undefined
  return [code ?? 'network error', address].filter((part) => part !== undefined).join(' ')
}

/** The errno code (ECONNREFUSED …) of an error or of one of its causes. */
export function errnoOf(error: unknown): string | undefined {
  for (let cause = error, depth = 0; cause !== undefined && depth < 5; depth++) {
    if (typeof cause !== 'object' || cause === null) return undefined
    if ('code' in cause && typeof cause.code === 'string') return cause.code
    cause = 'cause' in cause ? cause.cause : undefined
  }
  return undefined
}

/**
 * True when the same call may succeed later: network failures, timeouts, 408, 429, 5xx, and
 * authentication failures (credentials get fixed or rotated; usage must wait, not vanish).
 */
export function isRetriable(error: unknown): boolean {
  if (!(error instanceof PlanshipMeterError)) return false
  switch (error.code) {
    case 'PLANSHIP_UNREACHABLE':
    case 'PLANSHIP_TIMEOUT':
    case 'PLANSHIP_BAD_RESPONSE':
    case 'PLANSHIP_AUTH_FAILED':
    case 'PLANSHIP_PRODUCT_NOT_FOUND': // a configuration error: usage waits for the fix
      return true
    case 'PLANSHIP_HTTP_ERROR':
      return [401, 403, 408, 429].includes(error.status ?? 0) || (error.status ?? 0) >= 500
    default:
      return false
  }
}
