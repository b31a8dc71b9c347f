import { grantedValue, type Lever, type Product } from './catalog.js'
import type { AggregationPeriod, EntitlementValue } from './fixture.js'
import type { StoredRecord } from './records.js'
import type { Customer, EmulatorState } from './state.js'

/**
 * What the console shows (`GET /_emulator/state`): the catalog, and every customer's usage against
 * its limits, as Planship would answer them now (aggregation lag included). snake_case, as every
 * admin route.
 */

/** How many of the latest metering records the overview carries, to fill the console's feed on load. */
const RECENT_RECORDS = 50

/** A metering record as the console's feed shows it: who, what, when. */
export interface RecordView {
  id: string
  customer_id: string
  /** `null` when the customer has none or was deleted. */
  alternative_id: string | null
  metering_id: string
  bucket: string | null
  usage: number
  /** ISO 8601, emulator time. */
  recorded_at: string
}

/** Which records a metered lever counts now. */
export type WindowView =
  | { kind: 'subscription'; start: string | null; end: string | null }
  | { kind: 'rolling'; seconds: number }
  | { kind: 'all-time' }

export interface LeverStatusView {
  slug: string
  name: string
  type: Lever['type']
  /** What the customer's plans grant: the limit of a metered lever (`-1` unlimited), the value of others. */
  granted: EntitlementValue
  /** Metered levers: usage counted now (the formula's total). */
  used?: number
  /** Metered levers: the entitlement, i.e. the remaining allowance (per bucket: `"null"` is unbucketed). */
  remaining?: number | Record<string, number>
  /** Per-bucket levers: usage and remaining of every bucket used in the window. */
  buckets?: Array<{ bucket: string | null; used: number; remaining: number }>
  window?: WindowView
}

export interface CustomerView {
  id: string
  alternative_id: string | null
  name: string
  email: string
  subscriptions: Array<{
    id: string
    product: string
    plan: string
    is_active: boolean
    last_renewed_at: string
    renew_at: string | null
  }>
  /** By product slug. */
  levers: Record<string, LeverStatusView[]>
}

export function recordView(record: StoredRecord, state: EmulatorState): RecordView {
  return {
    id: record.id,
    customer_id: record.customerId,
    alternative_id: state.findCustomer(record.customerId)?.alternativeId ?? null,
    metering_id: record.meteringId,
    bucket: record.bucket,
    usage: record.usage,
    recorded_at: new Date(record.recordedAt).toISOString(),
  }
}

export function overview(state: EmulatorState) {
  const records = state.allRecords()
  return {
    now: new Date(state.now()).toISOString(),
    now_ms: state.now(),
    products: state.catalog.products.map(productView),
    customers: state.customers().map((customer) => customerView(customer, state)),
    records: {
      total: records.length,
      recent: records.slice(-RECENT_RECORDS).map((record) => recordView(record, state)),
    },
  }
}

function productView(product: Product) {
  return {
    slug: product.slug,
    name: product.name,
    description: product.description,
    levers: product.levers.map((lever) => ({
      slug: lever.slug,
      name: lever.name,
      type: lever.type,
      metering_ids: [...lever.meteringIds],
      ...(lever.type === 'metered' ? { formula: lever.formula, period: lever.period, scope: lever.scope } : {}),
    })),
    plans: product.plans.map((plan) => ({
      slug: plan.slug,
      name: plan.name,
      duration_period: plan.durationPeriod,
      duration_unit: plan.durationUnit,
      entitlements: Object.fromEntries(product.levers.map((lever) => [lever.slug, grantedValue(lever, [plan])])),
    })),
  }
}

function customerView(customer: Customer, state: EmulatorState): CustomerView {
  const levers: Record<string, LeverStatusView[]> = {}
  for (const product of state.catalog.products) {
    levers[product.slug] = leverStatuses(customer, product, state)
  }
  return {
    id: customer.id,
    alternative_id: customer.alternativeId,
    name: customer.name,
    email: customer.email,
    subscriptions: state.memberships(customer).map(({ subscription }) => ({
      id: subscription.id,
      product: subscription.product.slug,
      plan: subscription.plan.slug,
      is_active: subscription.isActive,
      last_renewed_at: new Date(subscription.lastRenewedAt).toISOString(),
      renew_at: subscription.renewAt === null ? null : new Date(subscription.renewAt).toISOString(),
    })),
    levers,
  }
}

function leverStatuses(customer: Customer, product: Product, state: EmulatorState): LeverStatusView[] {
  const subscriptions = state.activeSubscriptions(customer, product)
  const entitlements = state.entitlements(customer, product)
  return product.levers.map((lever) => {
    const granted = grantedValue(
      lever,
      subscriptions.map((s) => s.plan),
    )
    const view: LeverStatusView = { slug: lever.slug, name: lever.name, type: lever.type, granted }
    if (lever.type !== 'metered') return view
    const usage = state.leverUsage(customer, product, lever)
    const remaining = entitlements[lever.slug] as number | Record<string, number>
    view.used = usage.total
    view.remaining = remaining
    const first = subscriptions[0]
    view.window = windowView(lever.period, first)
    if (lever.formula === 'per-bucket' && typeof remaining === 'object') {
      view.buckets = Object.entries(usage.by_bucket).map(([bucket, used]) => ({
        bucket: bucket === 'null' ? null : bucket,
        used,
        remaining: remaining[bucket] ?? 0,
      }))
    }
    return view
  })
}

function windowView(
  period: AggregationPeriod,
  subscription: { lastRenewedAt: number; renewAt: number | null } | undefined,
): WindowView {
  if (typeof period === 'object') return { kind: 'rolling', seconds: period.windowSeconds }
  if (period === 'all-time') return { kind: 'all-time' }
  const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : new Date(ms).toISOString())
  return { kind: 'subscription', start: iso(subscription?.lastRenewedAt), end: iso(subscription?.renewAt) }
}
