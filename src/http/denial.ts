import type { Denied } from '../enforcement/enforcer.js'
import { PlanshipMeterError } from '../errors.js'
import type { Denial } from '../types.js'

export function unidentified(message = 'No customer could be identified for this request'): Denial {
  return { status: 401, code: 'customer_unidentified', message, headers: {} }
}

/** The headers of a 429 for the lever that refused, with the units left and its allowance when known. */
export type QuotaHeaders = (lever: string, remaining: number, limit: number | undefined) => Record<string, string>

/** Turns an enforcement refusal into the contract's HTTP denial. */
export function toDenial(denied: Denied, customerId: string, subject: string, quotaHeaders: QuotaHeaders): Denial {
  switch (denied.reason) {
    case 'feature':
      return {
        status: 403,
        code: 'feature_not_entitled',
        message: `The customer's plan does not include ${denied.lever}`,
        lever: denied.lever,
        customerId,
        headers: {},
      }
    case 'unidentified':
      return unidentified('The customer id of this request cannot name a Planship customer')
    case 'unavailable':
      return {
        status: 503,
        code: 'planship_unavailable',
        message: unavailableMessage(denied.error),
        customerId,
        headers: {},
      }
    case 'quota': {
      const denial: Denial = {
        status: 429,
        code: 'quota_exceeded',
        message: quotaMessage(denied, subject),
        customerId,
        headers: {},
      }
      if (denied.lever === undefined) return denial
      denial.lever = denied.lever
      denial.headers = quotaHeaders(denied.lever, denied.remaining, denied.limit)
      return denial
    }
  }
}

/**
 * Says what the headers say: a request costing more than is left is not "used up", and a lever
 * the plan gives none of (its whole allowance is 0) was never there to use up. When the whole
 * allowance is not known (usage not cached yet), it says only what is certain: nothing is left.
 */
function quotaMessage(denied: Extract<Denied, { reason: 'quota' }>, subject: string): string {
  const { lever, remaining, limit, cost } = denied
  if (lever === undefined) return `The customer has no allowance for ${subject}`
  if (limit === 0) return `The customer's plan does not include ${lever}`
  if (remaining > 0)
    return `This request needs ${units(cost)} of ${lever}; ${remaining} ${remaining === 1 ? 'is' : 'are'} left`
  if (limit === undefined) return `The customer has no ${lever} left`
  return `The customer's ${lever} allowance is used up`
}

const units = (count: number) => `${count} ${count === 1 ? 'unit' : 'units'}`

function unavailableMessage(error: unknown): string {
  const code = error instanceof PlanshipMeterError ? error.code : undefined
  if (code === 'METER_CLOSED') return 'The service is shutting down; try again shortly'
  if (code === 'USAGE_BACKLOG_FULL') return 'Usage cannot be recorded right now; try again later'
  return 'Entitlements cannot be checked right now; try again later'
}

/** The default answer's JSON body: `{ error: { code, message, lever? } }`. */
export function denialBody(denial: Denial): { error: { code: string; message: string; lever?: string } } {
  const error: { code: string; message: string; lever?: string } = { code: denial.code, message: denial.message }
  if (denial.lever !== undefined) error.lever = denial.lever
  return { error }
}
