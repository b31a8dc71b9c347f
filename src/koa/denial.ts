import type { Context } from 'koa'
import type { Denied } from '../enforcement/enforcer.js'
import { PlanshipMeterError } from '../errors.js'
import type { Denial } from '../options.js'

export function unidentified(message = 'No customer could be identified for this request'): Denial {
  return { status: 401, code: 'customer_unidentified', message, headers: {} }
}

/** Turns an enforcement refusal into the contract's HTTP denial. */
export function toDenial(denied: Denied, customerId: string, subject: string): Denial {
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
      // IETF draft-ietf-httpapi-ratelimit-headers: one named policy per lever.
      const name = sfString(denied.lever)
      denial.headers['RateLimit'] = `${name};r=${denied.remaining}`
      if (denied.limit !== undefined) denial.headers['RateLimit-Policy'] = `${name};q=${denied.limit}`
      return denial
    }
  }
}

/** Says what the headers say: a request costing more than is left is not "used up". */
function quotaMessage(denied: Extract<Denied, { reason: 'quota' }>, subject: string): string {
  if (denied.lever === undefined) return `The customer has no allowance for ${subject}`
  if (denied.remaining <= 0) return `The customer's ${denied.lever} allowance is used up`
  return `This request needs ${denied.cost} units of ${denied.lever}; ${denied.remaining} are left`
}

function unavailableMessage(error: unknown): string {
  const code = error instanceof PlanshipMeterError ? error.code : undefined
  if (code === 'METER_CLOSED') return 'The service is shutting down; try again shortly'
  if (code === 'USAGE_BACKLOG_FULL') return 'Usage cannot be recorded right now; try again later'
  return 'Entitlements cannot be checked right now; try again later'
}

/** A structured-field string (RFC 8941 §3.3.3). */
function sfString(value: string): string {
  return `"${value.replace(/[^\x20-\x7e]/g, '?').replace(/[\\"]/g, '\\$&')}"`
}

/** The denial's status and headers, set before `onDenied` runs so that a custom body keeps them. */
export function writeDenialHead(ctx: Context, denial: Denial): void {
  ctx.status = denial.status
  ctx.set(denial.headers)
}

/** The default answer: the contract's JSON body and headers. */
export function writeDenial(ctx: Context, denial: Denial): void {
  writeDenialHead(ctx, denial)
  const error: { code: string; message: string; lever?: string } = { code: denial.code, message: denial.message }
  if (denial.lever !== undefined) error.lever = denial.lever
  ctx.body = { error }
}
