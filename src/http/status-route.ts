import type { CustomerStatus } from '../enforcement/status.js'
import { pathSegmentProblem } from '../planship/ids.js'
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
  // An id Planship cannot be asked about is no customer; any other failure is Planship's (503).
  const problem = pathSegmentProblem(customerId)
  if (problem !== undefined) {
    const error = new TypeError(`planship-meter: the customer id ${problem}`)
    return { allowed: false, denial: toDenial({ reason: 'unidentified', error }, customerId, 'status', () => ({})) }
  }
  try {
    return { allowed: true, body: await status(customerId) }
  } catch (error) {
    return { allowed: false, denial: toDenial({ reason: 'unavailable', error }, customerId, 'status', () => ({})) }
  }
}
