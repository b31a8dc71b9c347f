/** Names of the emulated API routes, as used by the request counters and fault rules. */
export const ROUTE_NAMES = [
  'token',
  'health',
  'createCustomer',
  'getCustomer',
  'deleteCustomer',
  'entitlements',
  'leverUsage',
  'meteringIdUsage',
  'reportUsage',
  'listSubscriptions',
  'createSubscription',
  'getSubscription',
  'modifySubscription',
  'renewSubscription',
  'listSubscriptionCustomers',
  'addSubscriptionCustomer',
  'removeSubscriptionCustomer',
  'getProduct',
  'listLevers',
  'getLever',
  'listPlans',
  'getPlan',
] as const

/** Name of an emulated API route, as used by the request counters and fault rules. */
export type RouteName = (typeof ROUTE_NAMES)[number]

/** Requests per route, whatever their outcome, so tests can assert how often a client called out. */
export class RequestCounters {
  private counts = new Map<RouteName, number>()

  increment(route: RouteName): void {
    this.counts.set(route, (this.counts.get(route) ?? 0) + 1)
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts)
  }

  reset(): void {
    this.counts = new Map()
  }
}
