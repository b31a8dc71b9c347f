import { PlanshipMeterError } from '../errors.js'

/**
 * Rejects when `promise` has not settled within `ms`. ioredis's own `commandTimeout` is one value
 * per client (the user's) and a timed-out command is not cancelled: it may still run later. So
 * every call gets its own deadline here, and every script is safe to run late or twice.
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new PlanshipMeterError('STORE_TIMEOUT', `Redis did not answer ${what} within ${ms} ms`))
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
