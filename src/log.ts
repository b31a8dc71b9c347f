import type { Clock, Logger } from './types.js'

type Level = 'debug' | 'info' | 'warn' | 'error'
type Fields = Record<string, unknown>

/** How often a repeated message (same key) is written: once per interval, with the count of repeats. */
export const REPEAT_INTERVAL_MS = 60_000

/** Most distinct keys remembered for throttling; past it the oldest is forgotten (it may log again). */
const MAX_KEYS = 1_000

/** Argument order of the user's logger: ours `(message, fields)`, or pino's and bunyan's `(fields, message)`. */
export type LoggerStyle = 'message-first' | 'fields-first'

/** How planship-meter writes: never throws, and throttles what would repeat on every request. */
export interface Log {
  debug(message: string, fields?: Fields): void
  info(message: string, fields?: Fields): void
  warn(message: string, fields?: Fields): void
  error(message: string, fields?: Fields): void
  /**
   * Writes `message` at most once per {@link REPEAT_INTERVAL_MS} for `key`; the next line after
   * a quiet interval carries `repeated`, the number of lines left out since the last one.
   */
  throttled(level: Level, key: string, message: string, fields?: Fields): void
}

const consoleLogger: Logger = {
  warn: (message, fields) => console.warn(`[planship-meter] ${message}`, fields ?? ''),
  error: (message, fields) => console.error(`[planship-meter] ${message}`, fields ?? ''),
}

/** pino and bunyan loggers take `(fields, message)`; both are recognisable by their own API. */
export function detectLoggerStyle(logger: object): LoggerStyle {
  const candidate = logger as { bindings?: unknown; levels?: unknown; fields?: unknown; streams?: unknown }
  const pino = typeof candidate.bindings === 'function' && typeof candidate.levels === 'object'
  const bunyan = typeof candidate.fields === 'object' && Array.isArray(candidate.streams)
  return pino || bunyan ? 'fields-first' : 'message-first'
}

export function createLog(logger: Logger | undefined, style: LoggerStyle | undefined, clock: Clock): Log {
  const target: Logger = logger ?? consoleLogger
  const order = style ?? detectLoggerStyle(target)
  const write = (level: Level, message: string, fields?: Fields): void => {
    const method = (target as Record<Level, ((...args: unknown[]) => void) | undefined>)[level]
    if (typeof method !== 'function') return
    try {
      if (order === 'fields-first') method.call(target, fields ?? {}, message)
      else if (fields === undefined) method.call(target, message)
      else method.call(target, message, fields)
    } catch {
      // Logging must never cost usage or a response.
    }
  }
  const seen = new Map<string, { loggedAt: number; repeated: number }>()
  return {
    debug: (message, fields) => write('debug', message, fields),
    info: (message, fields) => write('info', message, fields),
    warn: (message, fields) => write('warn', message, fields),
    error: (message, fields) => write('error', message, fields),
    throttled(level, key, message, fields) {
      const now = clock.now()
      const last = seen.get(key)
      if (last !== undefined && now - last.loggedAt < REPEAT_INTERVAL_MS) {
        last.repeated++
        return
      }
      const repeated = last?.repeated ?? 0
      seen.delete(key)
      seen.set(key, { loggedAt: now, repeated: 0 })
      if (seen.size > MAX_KEYS) seen.delete(seen.keys().next().value as string)
      write(level, message, repeated > 0 ? { ...fields, repeated } : fields)
    },
  }
}
