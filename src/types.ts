/**
 * The small types every layer shares. A leaf: this module imports nothing, so whatever imports
 * it (options, the store, the log, the Planship client) never closes an import circle through it.
 */

/** A clock in milliseconds. Inject one in tests instead of patching timers. */
export interface Clock {
  now(): number
}

/**
 * Where planship-meter writes what it does. Each field is optional; missing levels are dropped.
 * pino and bunyan loggers fit as they are: they are recognised and called `(fields, message)`.
 */
export interface Logger {
  debug?(message: string, fields?: Record<string, unknown>): void
  info?(message: string, fields?: Record<string, unknown>): void
  warn?(message: string, fields?: Record<string, unknown>): void
  error?(message: string, fields?: Record<string, unknown>): void
}

/** A value, or a promise of it: synchronous where it can be, asynchronous where it must. */
export type MaybePromise<T> = T | PromiseLike<T>

/** What a denial was about, handed to `onDenied` and written as the default JSON body. */
export interface Denial {
  /** HTTP status of the default answer: 401, 403, 429 or 503. */
  status: 401 | 403 | 429 | 503
  code: 'customer_unidentified' | 'feature_not_entitled' | 'quota_exceeded' | 'planship_unavailable'
  message: string
  /** The lever that denied the request, when one did. */
  lever?: string
  customerId?: string
  /** Headers of the default answer (RateLimit-Policy, RateLimit, Retry-After on 429). */
  headers: Record<string, string>
}
