import { aggregateLever, remainingAllowance, toLeverUsage, type LeverUsageWire } from './aggregation.js'
import { ApiError, notFound } from './api-error.js'
import { compileCatalog, grantedValue, type Catalog, type Lever, type Plan, type Product } from './catalog.js'
import { fixtureCredentials, type EntitlementValue, type Fixture } from './fixture.js'
import { newUuid, uuidFromName } from './ids.js'
import { RecordIndex, type StoredRecord } from './records.js'
import { addDuration, type EmulatorClock } from './time.js'
import { TokenStore } from './tokens.js'

export interface Customer {
  id: string
  alternativeId: string | null
  name: string
  email: string
  metadata: Record<string, unknown>
  /** By subscription id. */
  memberships: Map<string, Membership>
}

/** A customer's place in a subscription (Planship's `SubscriptionCustomer`). */
export interface Membership {
  subscription: Subscription
  customerId: string
  isAdministrator: boolean
  isSubscriber: boolean
  metadata: Record<string, unknown>
}

export interface Subscription {
  id: string
  product: Product
  plan: Plan
  renewPlan: Plan
  autoRenew: boolean
  isActive: boolean
  startAt: number
  lastRenewedAt: number
  /** `null` for perpetual plans. */
  renewAt: number | null
  maxSubscribers: number
  /** Records with a smaller `seq` belong to earlier periods (set by forced renewals). */
  periodStartSeq: number
  /** By customer id. */
  members: Map<string, Membership>
}

export interface CustomerInput {
  alternativeId?: string | null
  name?: string
  email?: string
  metadata?: Record<string, unknown>
}

export interface SubscribeOptions {
  id?: string
  autoRenew?: boolean
  renewAt?: number
  maxSubscribers?: number
  isSubscriber?: boolean
  metadata?: Record<string, unknown>
}

export interface SubscriptionPatch {
  plan?: Plan
  renewPlan?: Plan
  maxSubscribers?: number
  isActive?: boolean
  autoRenew?: boolean
  renewAt?: number
}

/** Filter of {@link EmulatorState.recordedUsage}; an absent field matches everything. */
export interface UsageFilter {
  /** Planship UUID or alternative id. */
  customerId?: string
  meteringId?: string
  /** `null` matches unbucketed records only. */
  bucket?: string | null
}

export interface StateOptions {
  clock: EmulatorClock
  aggregationLagMs: number
  tokenTtlSeconds: number
  /** Called with every new metering record, e.g. to stream it to the console. */
  onRecord?: (record: StoredRecord) => void
}

/** All emulator data, seeded from a fixture; the HTTP layer only translates to and from it. */
export class EmulatorState {
  readonly catalog: Catalog
  readonly tokens: TokenStore
  aggregationLagMs: number

  private readonly clock: EmulatorClock
  private readonly customersById = new Map<string, Customer>()
  private readonly customersByAlternativeId = new Map<string, Customer>()
  private readonly subscriptionsById = new Map<string, Subscription>()
  private readonly records = new RecordIndex()
  private nextSeq = 0
  private readonly onRecord: ((record: StoredRecord) => void) | undefined

  constructor(
    private readonly fixture: Fixture,
    options: StateOptions,
  ) {
    this.clock = options.clock
    this.aggregationLagMs = options.aggregationLagMs
    this.onRecord = options.onRecord
    this.catalog = compileCatalog(fixture)
    this.tokens = new TokenStore(fixtureCredentials(fixture), () => this.clock.now(), options.tokenTtlSeconds)
    this.seed()
  }

  now(): number {
    return this.clock.now()
  }

  /** Back to the fixture: customers, subscriptions and records; tokens are revoked. */
  reset(): void {
    this.customersById.clear()
    this.customersByAlternativeId.clear()
    this.subscriptionsById.clear()
    this.records.clear()
    this.nextSeq = 0
    this.tokens.revokeAll()
    this.seed()
  }

  private seed(): void {
    for (const c of this.fixture.customers ?? []) {
      const id = (c.id ?? uuidFromName(`customer:${c.alternativeId ?? ''}`)).toLowerCase()
      const customer = this.createCustomer(
        {
          alternativeId: c.alternativeId ?? null,
          name: c.name ?? '',
          email: c.email ?? '',
          metadata: c.metadata ?? {},
        },
        id,
      )
      ;(c.subscriptions ?? []).forEach((s, i) => {
        const plan = this.productBySlug(s.product).plansBySlug.get(s.plan)
        if (plan === undefined) throw new TypeError(`fixture plan ${s.product}/${s.plan} is missing`)
        const options: SubscribeOptions = { id: uuidFromName(`subscription:${id}:${s.product}:${s.plan}:${i}`) }
        if (s.autoRenew !== undefined) options.autoRenew = s.autoRenew
        this.subscribe(customer, plan, options)
      })
    }
  }

  // Catalog

  productBySlug(slug: string): Product {
    const product = this.catalog.productsBySlug.get(slug)
    if (product === undefined) throw notFound('Product')
    return product
  }

  // Customers

  /** By Planship UUID or alternative id. */
  findCustomer(ref: string): Customer | undefined {
    return this.customersById.get(ref.toLowerCase()) ?? this.customersByAlternativeId.get(ref)
  }

  /** Every customer, in creation order. */
  customers(): Customer[] {
    return [...this.customersById.values()]
  }

  customer(ref: string): Customer {
    const customer = this.findCustomer(ref)
    if (customer === undefined) throw notFound('Customer')
    return customer
  }

  createCustomer(input: CustomerInput, id: string = newUuid()): Customer {
    const alternativeId = input.alternativeId ?? null
    if (alternativeId !== null && this.customersByAlternativeId.has(alternativeId)) {
      throw new ApiError(409, 'A customer with this alternative_id already exists')
    }
    const customer: Customer = {
      id,
      alternativeId,
      name: input.name ?? '',
      email: input.email ?? '',
      metadata: input.metadata ?? {},
      memberships: new Map(),
    }
    this.customersById.set(id, customer)
    if (alternativeId !== null) this.customersByAlternativeId.set(alternativeId, customer)
    return customer
  }

  /** Removes the customer; subscriptions left without members end. Its records stay in the log. */
  deleteCustomer(customer: Customer): void {
    this.customersById.delete(customer.id)
    if (customer.alternativeId !== null) this.customersByAlternativeId.delete(customer.alternativeId)
    for (const membership of customer.memberships.values()) {
      const subscription = membership.subscription
      subscription.members.delete(customer.id)
      if (subscription.members.size === 0) subscription.isActive = false
    }
  }

  // Subscriptions

  subscribe(customer: Customer, plan: Plan, options: SubscribeOptions = {}): Subscription {
    const product = this.catalog.productsById.get(plan.productId)
    if (product === undefined) throw notFound('Product')
    const now = this.now()
    const subscription: Subscription = {
      id: options.id ?? newUuid(),
      product,
      plan,
      renewPlan: plan,
      autoRenew: options.autoRenew ?? plan.autoRenew,
      isActive: true,
      startAt: now,
      lastRenewedAt: now,
      renewAt: options.renewAt ?? addDuration(now, plan.durationPeriod, plan.durationUnit),
      maxSubscribers: options.maxSubscribers ?? 1,
      periodStartSeq: this.nextSeq,
      members: new Map(),
    }
    const membership: Membership = {
      subscription,
      customerId: customer.id,
      isAdministrator: true,
      isSubscriber: options.isSubscriber ?? true,
      metadata: options.metadata ?? {},
    }
    subscription.members.set(customer.id, membership)
    customer.memberships.set(subscription.id, membership)
    this.subscriptionsById.set(subscription.id, subscription)
    return subscription
  }

  /** Adds a customer to a (team) subscription; subscribers take one of its `maxSubscribers` seats. */
  addMember(
    subscription: Subscription,
    customer: Customer,
    options: { isAdministrator?: boolean; isSubscriber?: boolean; metadata?: Record<string, unknown> } = {},
  ): Membership {
    if (subscription.members.has(customer.id)) throw new ApiError(409, 'Customer is already on this subscription')
    const isSubscriber = options.isSubscriber ?? true
    if (isSubscriber) {
      let seats = 0
      for (const member of subscription.members.values()) if (member.isSubscriber) seats++
      if (seats >= subscription.maxSubscribers)
        throw new ApiError(409, 'Subscription has no free seat (max_subscribers reached)')
    }
    const membership: Membership = {
      subscription,
      customerId: customer.id,
      isAdministrator: options.isAdministrator ?? false,
      isSubscriber,
      metadata: options.metadata ?? {},
    }
    subscription.members.set(customer.id, membership)
    customer.memberships.set(subscription.id, membership)
    return membership
  }

  removeMember(subscription: Subscription, customerId: string): Membership {
    const membership = subscription.members.get(customerId)
    if (membership === undefined) throw notFound('Subscription customer')
    subscription.members.delete(customerId)
    this.customersById.get(customerId)?.memberships.delete(subscription.id)
    if (subscription.members.size === 0) subscription.isActive = false
    return membership
  }

  findSubscription(id: string): Subscription | undefined {
    const subscription = this.subscriptionsById.get(id.toLowerCase())
    if (subscription !== undefined) this.refresh(subscription)
    return subscription
  }

  /** The customer's memberships, optionally only those to plans of one product. */
  memberships(customer: Customer, productSlug?: string): Membership[] {
    const result: Membership[] = []
    for (const membership of customer.memberships.values()) {
      this.refresh(membership.subscription)
      if (productSlug === undefined || membership.subscription.product.slug === productSlug) result.push(membership)
    }
    return result
  }

  membership(customer: Customer, subscriptionId: string): Membership {
    const membership = customer.memberships.get(subscriptionId.toLowerCase())
    if (membership === undefined) throw notFound('Subscription')
    this.refresh(membership.subscription)
    return membership
  }

  /** Active subscriptions that entitle the customer to levers of `product`, oldest first. */
  activeSubscriptions(customer: Customer, product: Product): Subscription[] {
    const result: Subscription[] = []
    for (const membership of customer.memberships.values()) {
      const subscription = membership.subscription
      if (subscription.product !== product || !membership.isSubscriber) continue
      this.refresh(subscription)
      if (subscription.isActive) result.push(subscription)
    }
    return result
  }

  modifySubscription(subscription: Subscription, patch: SubscriptionPatch): void {
    if (patch.plan !== undefined) {
      subscription.plan = patch.plan
      // A plan change without a renew plan keeps renewing into the new plan, as a plan switch does.
      if (patch.renewPlan === undefined) subscription.renewPlan = patch.plan
    }
    if (patch.renewPlan !== undefined) subscription.renewPlan = patch.renewPlan
    if (patch.maxSubscribers !== undefined) subscription.maxSubscribers = patch.maxSubscribers
    if (patch.isActive !== undefined) subscription.isActive = patch.isActive
    if (patch.autoRenew !== undefined) subscription.autoRenew = patch.autoRenew
    if (patch.renewAt !== undefined) subscription.renewAt = patch.renewAt
    this.refresh(subscription)
  }

  /** Starts a new period now (Planship's forced renewal): period-scoped usage starts from zero. */
  renew(subscription: Subscription): void {
    const now = this.now()
    subscription.plan = subscription.renewPlan
    subscription.isActive = true
    subscription.lastRenewedAt = now
    subscription.renewAt = addDuration(now, subscription.plan.durationPeriod, subscription.plan.durationUnit)
    subscription.periodStartSeq = this.nextSeq
  }

  /** Renews lazily: periods that ended while nobody looked are rolled over when next read. */
  private refresh(subscription: Subscription): void {
    if (!subscription.isActive) return
    const now = this.now()
    while (subscription.renewAt !== null && now >= subscription.renewAt) {
      if (!subscription.autoRenew) {
        subscription.isActive = false
        return
      }
      const plan = subscription.renewPlan
      const periodStart: number = subscription.renewAt
      let next = addDuration(periodStart, plan.durationPeriod, plan.durationUnit)
      let start = periodStart
      if (next !== null && next <= now && plan.durationUnit !== 'month' && plan.durationUnit !== 'year') {
        // Fixed-length periods: jump over the elapsed ones instead of looping (minute plans, long advances).
        const length = next - periodStart
        const skipped = Math.floor((now - periodStart) / length)
        start = periodStart + skipped * length
        next = start + length
      }
      subscription.plan = plan
      subscription.lastRenewedAt = start
      subscription.renewAt = next
    }
  }

  // Usage

  reportUsage(
    customer: Customer,
    product: Product,
    meteringId: string,
    usage: number,
    bucket: string | null,
    subscriptionId: string | null,
  ): StoredRecord {
    let allocated: string | null
    if (subscriptionId !== null) {
      const membership = customer.memberships.get(subscriptionId.toLowerCase())
      if (membership === undefined || membership.subscription.product !== product) throw notFound('Subscription')
      allocated = membership.subscription.id
    } else {
      allocated = this.activeSubscriptions(customer, product)[0]?.id ?? null
    }
    const record: StoredRecord = {
      seq: this.nextSeq++,
      id: newUuid(),
      usage,
      meteringId,
      customerId: customer.id,
      productId: product.id,
      subscriptionId: allocated,
      bucket,
      recordedAt: this.now(),
    }
    this.records.add(record)
    this.onRecord?.(record)
    return record
  }

  leverUsage(customer: Customer, product: Product, lever: Lever): LeverUsageWire {
    const subscriptions = this.activeSubscriptions(customer, product)
    return toLeverUsage(lever, this.aggregate(customer, product, lever, subscriptions))
  }

  /** Every lever of the product: plan values merged most-permissively, metered ones as remaining. */
  entitlements(customer: Customer, product: Product): Record<string, EntitlementValue | Record<string, number>> {
    const subscriptions = this.activeSubscriptions(customer, product)
    const result: Record<string, EntitlementValue | Record<string, number>> = {}
    for (const lever of product.levers) {
      const value = grantedValue(
        lever,
        subscriptions.map((s) => s.plan),
      )
      if (lever.type === 'metered') {
        const aggregate = this.aggregate(customer, product, lever, subscriptions)
        result[lever.slug] = remainingAllowance(lever, value as number, aggregate)
      } else {
        result[lever.slug] = Array.isArray(value) ? [...value] : value
      }
    }
    return result
  }

  private aggregate(customer: Customer, product: Product, lever: Lever, subscriptions: Subscription[]) {
    return aggregateLever(this.records, lever, {
      now: this.now(),
      aggregationLagMs: this.aggregationLagMs,
      customerId: customer.id,
      productId: product.id,
      subscriptions,
    })
  }

  /** Sum of `usage` of all records matching `filter`, visible or not, whatever their period. */
  recordedUsage(filter: UsageFilter = {}): number {
    const customerId =
      filter.customerId === undefined
        ? undefined
        : (this.findCustomer(filter.customerId)?.id ?? filter.customerId.toLowerCase())
    let sum = 0
    for (const record of this.records.all()) {
      if (customerId !== undefined && record.customerId !== customerId) continue
      if (filter.meteringId !== undefined && record.meteringId !== filter.meteringId) continue
      if (filter.bucket !== undefined && record.bucket !== filter.bucket) continue
      sum += record.usage
    }
    return sum
  }

  allRecords(): readonly StoredRecord[] {
    return this.records.all()
  }
}
