import { PlanshipMeterError } from '../errors.js'

/**
 * Rejects when `promise` has not settled within `ms`. ioredis's own `commandTimeout` is one value
 * per client (the user's) and a timed-out command is not cancelled: it may still run later. So
 * every call gets its own deadline here, and every script is safe to run late or twice.
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    // Timers run before the poll phase reads sockets: on a busy event loop, an answer that came
    // in time may still be unread when the timer fires. setImmediate runs after the poll phase,
    // so only an answer that really is missing counts as a timeout.
    const timer = setTimeout(() => {
      setImmediate(() => {
        reject(new PlanshipMeterError('STORE_TIMEOUT', `Redis did not answer ${what} within ${ms} ms`))
      })
    }, ms)
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error)
      },
    )
  })
}
