import type { EntitlementValue } from '../planship/types.js'
import type { Clock } from '../types.js'
import type { CustomerView, Enforcer, ScopeView } from './enforcer.js'
import { isEntitled } from './entitlements.js'
import type { CurrentPeriod } from './periods.js'

/** A metered allowance as admission sees it. Unlimited: `limit` and `remaining` are `null`. */
export interface AllowanceStatus {
  /** The whole allowance of the period, or `null` when unlimited. */
  limit: number | null
  /** Units used: reported to Planship, waiting to be, and reserved by work still running. */
  used: number
  /** The largest cost admission takes now, or `null` when unlimited. */
  remaining: number | null
}

/** A metered lever (a quota). */
export interface MeteredLeverStatus extends AllowanceStatus {
  kind: 'metered'
  /** When the allowance comes back (the subscription's renewal; for a rolling window, at the latest), when known. */
  resetsAt?: string
  /** A rolling window's length, for levers that have one. */
  windowSeconds?: number
  /**
   * Per-bucket levers: each bucket seen so far (the top-level figures are those of a bucket not
   * used yet, or of unbucketed usage).
   */
  buckets?: Record<string, AllowanceStatus>
}

/** A lever that is not metered: a feature flag, a number, a list. */
export interface FeatureLeverStatus {
  kind: 'feature'
  /** What `requireFeature()` decides. */
  entitled: boolean
  value: EntitlementValue
}

export type LeverStatus = MeteredLeverStatus | FeatureLeverStatus

/** What `status()` answers: one customer's quotas and features, as the meter decides them now. */
export interface CustomerStatus {
  customerId: string
  /** `'fresh'`: Planship data younger than `cache.ttlMs`; `'stale'`: older, being refreshed. */
  source: 'fresh' | 'stale'
  levers: Record<string, LeverStatus>
}

export interface StatusConfig {
  enforcer: Enforcer
  period: (customerId: string, lever: string) => Promise<CurrentPeriod>
  clock: Clock
}

/**
 * The customer's status, from the view admission uses (the cached snapshot reconciled with
 * usage reserved, pending or in flight): `remaining` is the largest cost `reserve()` admits now.
 * Reserves nothing; reads Planship only for what is not cached (as a decision would).
 */
export async function customerStatus(config: StatusConfig, customerId: string): Promise<CustomerStatus> {
  const view: CustomerView = await config.enforcer.view(customerId)
  const levers: Record<string, LeverStatus> = {}
  await Promise.all(
    view.levers.map(async (lever) => {
      if (lever.kind === 'feature') {
        levers[lever.lever] = { kind: 'feature', entitled: isEntitled(lever.value), value: lever.value }
        return
      }
      const [top, ...buckets] = lever.scopes
      const status: MeteredLeverStatus = { kind: 'metered', ...allowance(top!) }
      const period = await config.period(customerId, lever.lever).catch(() => undefined)
      const reset = period?.reset
      if (reset?.windowSeconds !== undefined) status.windowSeconds = reset.windowSeconds
      const resetsAt = reset?.windowSeconds === undefined ? period?.endsAt : undefined
      const at =
        resetsAt ?? (reset?.resetSeconds === undefined ? undefined : config.clock.now() + reset.resetSeconds * 1000)
      if (at !== undefined) status.resetsAt = new Date(at).toISOString()
      if (buckets.length > 0) {
        status.buckets = {}
        for (const scope of buckets) status.buckets[scope.bucket!] = allowance(scope)
      }
      levers[lever.lever] = status
    }),
  )
  // Same order as Planship's entitlements, whatever order the periods were read in.
  const ordered: Record<string, LeverStatus> = {}
  for (const lever of view.levers) if (levers[lever.lever] !== undefined) ordered[lever.lever] = levers[lever.lever]!
  return { customerId, source: view.source, levers: ordered }
}

function allowance(scope: ScopeView): AllowanceStatus {
  const used = (scope.used ?? 0) + scope.unseen
  if (scope.unlimited) return { limit: null, used, remaining: null }
  const limit = scope.snapshotRemaining + (scope.used ?? 0)
  return { limit, used, remaining: Math.min(limit, Math.max(0, scope.left)) }
}
