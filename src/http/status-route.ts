import type { CustomerStatus } from '../enforcement/status.js'
import type { Denial } from '../types.js'
import { toDenial, unidentified } from './denial.js'
import type { PlanshipRequestState } from './state.js'

/** What a status route answers: the identified customer's status, or a denial as the other routes give it. */
export type StatusAnswer = { allowed: true; body: CustomerStatus } | { allowed: false; denial: Denial }

/** Headers of a status answer: it is one customer's, and changes with every request. */
export const STATUS_HEADERS: Readonly<Record<string, string>> = Object.freeze({ 'Cache-Control': 'private, no-store' })

/**
 * The shared part of `statusRoute()` on every framework: the request's own customer only (the
 * body is what `status()` returns, nothing of another customer), never metered. 401 without a
 * customer (or with an id Planship cannot be asked about), 503 when Planship cannot be read and
 * nothing is cached.
 */
export async function statusAnswer(
  state: PlanshipRequestState,
  status: (customerId: string) => Promise<CustomerStatus>,
): Promise<StatusAnswer> {
  const { customerId } = state
  if (customerId === undefined) return { allowed: false, denial: unidentified() }
  try {
    return { allowed: true, body: await status(customerId) }
  } catch (error) {
    const denied =
      error instanceof TypeError
        ? { reason: 'unidentified' as const, error }
        : { reason: 'unavailable' as const, error }
    return { allowed: false, denial: toDenial(denied, customerId, 'status', () => ({})) }
  }
}
