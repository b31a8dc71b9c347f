import type { Catalog, Lever, Plan, Product } from './catalog.js'
import type { EntitlementValue } from './fixture.js'
import type { StoredRecord } from './records.js'
import type { Customer, Membership, Subscription } from './state.js'

/** JSON shapes of Planship API 0.3.1 (snake_case; responses say `metadata_`). */

/** `MeteringRecord` on the wire, as `POST …/usage/{metering_id}` answers it. */
export interface MeteringRecordWire {
  id: string
  is_allocated: boolean
  usage: number
  metering_id: string
  /** The customer's Planship UUID, even when reported under an alternative id. */
  customer_id: string
  product_id: string
  /** The active subscription the record was allocated to, or `null`. */
  subscription_id: string | null
  bucket: string | null
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString()
}

export function meteringRecordWire(record: StoredRecord): MeteringRecordWire {
  return {
    id: record.id,
    // Aggregation is modelled as a delay, not as a state of the record; the SDK never reads this.
    is_allocated: false,
    usage: record.usage,
    metering_id: record.meteringId,
    customer_id: record.customerId,
    product_id: record.productId,
    subscription_id: record.subscriptionId,
    bucket: record.bucket,
  }
}

export function customerInDbWire(customer: Customer, catalog: Catalog) {
  return {
    id: customer.id,
    metadata_: customer.metadata,
    alternative_id: customer.alternativeId,
    name: customer.name,
    email: customer.email,
    organization_id: catalog.organizationId,
  }
}

export function subscriptionCustomerInDbWire(membership: Membership) {
  return {
    customer_id: membership.customerId,
    subscription_id: membership.subscription.id,
    metadata_: membership.metadata,
    is_administrator: membership.isAdministrator,
    is_subscriber: membership.isSubscriber,
  }
}

/** `Customer` on the wire: the customer with its subscriptions. */
export type CustomerWire = ReturnType<typeof customerWire>

export function customerWire(customer: Customer, catalog: Catalog) {
  return {
    ...customerInDbWire(customer, catalog),
    subscriptions: [...customer.memberships.values()].map((m) => subscriptionCustomerWire(m)),
  }
}

export function subscriptionCustomerWire(membership: Membership) {
  return {
    ...subscriptionCustomerInDbWire(membership),
    plan: planInDbWire(membership.subscription.plan),
  }
}

function planInDbWire(plan: Plan) {
  return {
    id: plan.id,
    slug: plan.slug,
    name: plan.name,
    description: plan.description,
    product_id: plan.productId,
    alternative_id: null,
    max_subscribers: 1,
    is_self_serve: true,
    is_public: true,
    auto_renew: plan.autoRenew,
    duration_period: plan.durationPeriod,
    duration_unit: plan.durationUnit,
  }
}

function idNameSlug(entity: { id: string; name: string; slug: string }) {
  return { id: entity.id, name: entity.name, slug: entity.slug }
}

export function subscriptionWithPlanWire(subscription: Subscription) {
  return {
    id: subscription.id,
    auto_renew: subscription.autoRenew,
    is_active: subscription.isActive,
    plan_id: subscription.plan.id,
    renew_plan_id: subscription.renewPlan.id,
    renew_at: iso(subscription.renewAt),
    last_renewed_at: iso(subscription.lastRenewedAt),
    max_subscribers: subscription.maxSubscribers,
    start_at: iso(subscription.startAt),
    alternative_id: null,
    plan: idNameSlug(subscription.plan),
    renew_plan: idNameSlug(subscription.renewPlan),
  }
}

export function customerSubscriptionWire(membership: Membership) {
  const subscription = membership.subscription
  return {
    customer_id: membership.customerId,
    subscription_id: subscription.id,
    metadata_: membership.metadata,
    is_administrator: membership.isAdministrator,
    is_subscriber: membership.isSubscriber,
    max_subscribers: subscription.maxSubscribers,
    auto_renew: subscription.autoRenew,
    is_active: subscription.isActive,
    renew_at: iso(subscription.renewAt),
    last_renewed_at: iso(subscription.lastRenewedAt),
    plan: idNameSlug(subscription.plan),
    renew_plan: idNameSlug(subscription.renewPlan),
  }
}

export function productWire(product: Product, catalog: Catalog) {
  return {
    id: product.id,
    slug: product.slug,
    name: product.name,
    description: product.description,
    organization_id: catalog.organizationId,
    alternative_id: null,
  }
}

export function leverInListWire(lever: Lever) {
  return {
    slug: lever.slug,
    name: lever.name,
    description: lever.description,
    order: lever.order,
    default_value: stringValue(lever.defaultValue),
  }
}

export function leverWire(lever: Lever) {
  const configuration: Record<string, unknown> = { type: lever.type, default: lever.defaultValue }
  if (lever.type === 'metered') {
    configuration.formula = lever.formula
    configuration.period = lever.period
    configuration.scope = lever.scope
  }
  if (lever.values !== undefined) configuration.values = lever.values
  return {
    id: lever.id,
    slug: lever.slug,
    name: lever.name,
    description: lever.description,
    lever_type_id: lever.typeId,
    product_id: lever.productId,
    metering_ids: [...lever.meteringIds],
    configuration,
    display_order: lever.order,
  }
}

export function planInListWire(plan: Plan) {
  return { slug: plan.slug, name: plan.name, description: plan.description, order: plan.order }
}

export function planWire(plan: Plan, product: Product) {
  return {
    ...planInListWire(plan),
    entitlements: product.levers.map((lever) => {
      const value = plan.entitlements.get(lever.slug) ?? lever.defaultValue
      return {
        formatted_value: formatValue(value),
        value,
        name: lever.slug,
        lever_name: lever.name,
        description: lever.description,
        order: lever.order,
        configuration: null,
      }
    }),
  }
}

function stringValue(value: EntitlementValue): string {
  return Array.isArray(value) ? JSON.stringify(value) : String(value)
}

function formatValue(value: EntitlementValue): string {
  if (value === -1) return 'Unlimited'
  if (value === true) return 'Yes'
  if (value === false) return 'No'
  return Array.isArray(value) ? value.join(', ') : String(value)
}
