import { isPromiseLike, type MaybePromise } from '../enforcement/store.js'
import { PlanshipMeterError } from '../errors.js'
import type { Log } from '../log.js'
import { pathSegmentProblem } from '../planship/ids.js'
import { type PlanshipRequestState, requestState } from './state.js'

/**
 * Runs the user's `identify` with the framework's arguments and checks what it returned:
 * synchronous when `identify` is, `IDENTIFY_FAILED` when it throws or rejects.
 */
export function identifyCustomer<A extends unknown[]>(
  identify: (...args: A) => unknown,
  args: A,
  log: Log,
): MaybePromise<string | undefined> {
  let raw: unknown
  try {
    raw = identify(...args)
  } catch (error) {
    throw identifyFailed(error, log)
  }
  if (isPromiseLike(raw))
    return Promise.resolve(raw).then(
      (value: unknown) => validCustomerId(value, log),
      (error: unknown) => Promise.reject(identifyFailed(error, log)),
    )
  return validCustomerId(raw, log)
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

/**
 * A request's state from the user's `identify`, handed to `keep` to store where the framework
 * keeps it: synchronous when `identify` is (no promise of its own on the warm path).
 */
export function identifyRequest<A extends unknown[]>(
  identify: (...args: A) => unknown,
  args: A,
  log: Log,
  keep: (args: A, state: PlanshipRequestState) => void,
): MaybePromise<PlanshipRequestState> {
  const identifying = identifyCustomer(identify, args, log)
  return isPromiseLike(identifying)
    ? Promise.resolve(identifying).then((customerId) => kept(args, customerId, keep))
    : kept(args, identifying, keep)
}

/** A function of its own, not a closure made per request. */
function kept<A extends unknown[]>(
  args: A,
  customerId: string | undefined,
  keep: (args: A, state: PlanshipRequestState) => void,
): PlanshipRequestState {
  const state = requestState(customerId)
  keep(args, state)
  return state
}
