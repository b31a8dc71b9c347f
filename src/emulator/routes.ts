import type Router from '@koa/router'
import type { RouterContext, RouterMiddleware } from '@koa/router'
import { ApiError, notFound } from './api-error.js'
import type { RequestCounters, RouteName } from './counters.js'
import type { Faults } from './faults.js'
import type { RouterClass } from './koa-layer.js'
import type { EmulatorState, SubscriptionPatch } from './state.js'
import {
  bodyObject,
  optionalBoolean,
  optionalDateTime,
  optionalInteger,
  optionalObject,
  optionalString,
  optionalUuid,
  pathUuid,
  readJson,
  readText,
  requiredInteger,
  requiredString,
} from './validate.js'
import {
  customerInDbWire,
  customerSubscriptionWire,
  customerWire,
  leverInListWire,
  leverWire,
  meteringRecordWire,
  planInListWire,
  planWire,
  productWire,
  subscriptionCustomerInDbWire,
  subscriptionCustomerWire,
  subscriptionWithPlanWire,
} from './wire.js'

export interface ApiRouterDeps {
  state: EmulatorState
  counters: RequestCounters
  faults: Faults
}

type Method = 'get' | 'post' | 'patch' | 'delete'
type Handler = (ctx: RouterContext) => unknown

/**
 * The Planship API 0.3.1 routes. @koa/router matches the raw (still percent-encoded) path and
 * decodes each parameter, so `%2F` inside a customer id stays inside the parameter.
 */
export function createApiRouter(Router: RouterClass, { state, counters, faults }: ApiRouterDeps): Router {
  const router = new Router({ prefix: '/api/v1' })

  const requireBearer: RouterMiddleware = async (ctx, next) => {
    if (!state.tokens.checkBearer(ctx.get('authorization'))) {
      throw new ApiError(401, 'Not authenticated', { 'WWW-Authenticate': 'Bearer' })
    }
    await next()
  }

  const route = (method: Method, name: RouteName, path: string, handler: Handler, auth = true): void => {
    const chain: RouterMiddleware[] = [
      async (_ctx, next) => {
        counters.increment(name)
        await next()
      },
      faults.middleware(name),
    ]
    if (auth) chain.push(requireBearer)
    chain.push(async (ctx) => {
      const body = await handler(ctx)
      // The SDK parses every answer as JSON: always 200 with a JSON body, never 201/204.
      ctx.status = 200
      ctx.body = body
    })
    router[method](path, ...chain)
  }

  const param = (ctx: RouterContext, name: string): string => ctx.params[name] ?? ''
  const customerOf = (ctx: RouterContext) => state.customer(param(ctx, 'customerId'))
  const productOf = (ctx: RouterContext) => state.productBySlug(param(ctx, 'productSlug'))

  // Auth and health

  route(
    'post',
    'token',
    '/auth/token',
    async (ctx) => {
      // Planship's SDK sends no body; openid-client sends grant_type=client_credentials. Both are fine.
      const form = new URLSearchParams(await readText(ctx))
      const grantType = form.get('grant_type')
      if (!state.tokens.checkBasic(ctx.get('authorization'))) {
        throw new ApiError(401, 'Invalid client credentials', { 'WWW-Authenticate': 'Basic' })
      }
      if (grantType !== null && grantType !== 'client_credentials') throw new ApiError(400, 'Unsupported grant_type')
      const { accessToken, expiresIn } = state.tokens.issue()
      ctx.set('Cache-Control', 'no-store')
      return { access_token: accessToken, token_type: 'bearer', expires_in: expiresIn }
    },
    false,
  )
  route('get', 'health', '/health', () => ({}), false)

  // Customers

  route('post', 'createCustomer', '/customers', async (ctx) => {
    const body = bodyObject(await readJson(ctx), false)
    const input = {
      alternativeId: optionalString(body, 'alternative_id', 256) ?? null,
      name: optionalString(body, 'name') ?? '',
      email: optionalString(body, 'email') ?? '',
      metadata: optionalObject(body, 'metadata') ?? {},
    }
    return customerWire(state.createCustomer(input), state.catalog)
  })
  route('get', 'getCustomer', '/customers/:customerId', (ctx) => customerInDbWire(customerOf(ctx), state.catalog))
  route('delete', 'deleteCustomer', '/customers/:customerId', (ctx) => {
    const customer = customerOf(ctx)
    state.deleteCustomer(customer)
    return customerInDbWire(customer, state.catalog)
  })

  // Entitlements and metered usage

  const customerProduct = '/customers/:customerId/products/:productSlug'
  route('get', 'entitlements', `${customerProduct}/entitlements`, (ctx) =>
    state.entitlements(customerOf(ctx), productOf(ctx)),
  )
  route('get', 'leverUsage', `${customerProduct}/levers/:leverSlug/usage`, (ctx) => {
    const customer = customerOf(ctx)
    const product = productOf(ctx)
    const lever = product.leversBySlug.get(param(ctx, 'leverSlug'))
    if (lever === undefined) throw notFound('Lever')
    return state.leverUsage(customer, product, lever)
  })
  route('get', 'meteringIdUsage', `${customerProduct}/usage/:meteringId`, (ctx) => {
    const customer = customerOf(ctx)
    const product = productOf(ctx)
    const result: Record<string, unknown> = {}
    for (const lever of product.leversByMeteringId.get(param(ctx, 'meteringId')) ?? []) {
      result[lever.slug] = state.leverUsage(customer, product, lever)
    }
    return result
  })
  route('post', 'reportUsage', `${customerProduct}/usage/:meteringId`, async (ctx) => {
    const customer = customerOf(ctx)
    const product = productOf(ctx)
    const body = bodyObject(await readJson(ctx), true)
    const usage = requiredInteger(body, 'usage')
    const bucket = optionalString(body, 'bucket') ?? null
    const subscriptionId = optionalUuid(body, 'subscription_id') ?? null
    // Over-limit usage is recorded like any other: Planship leaves enforcement to the caller.
    const record = state.reportUsage(customer, product, param(ctx, 'meteringId'), usage, bucket, subscriptionId)
    return meteringRecordWire(record)
  })

  // Subscriptions

  route('get', 'listSubscriptions', '/customers/:customerId/subscriptions', (ctx) => {
    const productSlug = typeof ctx.query.product_slug === 'string' ? ctx.query.product_slug : undefined
    return state.memberships(customerOf(ctx), productSlug).map(customerSubscriptionWire)
  })
  route('get', 'getSubscription', '/customers/:customerId/subscriptions/:subscriptionId', (ctx) => {
    const customer = customerOf(ctx)
    return customerSubscriptionWire(
      state.membership(customer, pathUuid(param(ctx, 'subscriptionId'), 'subscription_id')),
    )
  })
  route('patch', 'modifySubscription', '/customers/:customerId/subscriptions/:subscriptionId', async (ctx) => {
    const customer = customerOf(ctx)
    const membership = state.membership(customer, pathUuid(param(ctx, 'subscriptionId'), 'subscription_id'))
    const subscription = membership.subscription
    const body = bodyObject(await readJson(ctx), true)
    const planOf = (slugKey: string, idKey: string) => {
      const slug = optionalString(body, slugKey)
      const id = optionalUuid(body, idKey)
      if (slug === undefined && id === undefined) return undefined
      const plan =
        slug !== undefined ? subscription.product.plansBySlug.get(slug) : state.catalog.plansById.get(id ?? '')
      if (plan === undefined || plan.productId !== subscription.product.id) throw notFound('Plan')
      return plan
    }
    const patch: SubscriptionPatch = {}
    const plan = planOf('plan_slug', 'plan_id')
    const renewPlan = planOf('renew_plan_slug', 'renew_plan_id')
    const maxSubscribers = optionalInteger(body, 'max_subscribers')
    const isActive = optionalBoolean(body, 'is_active')
    const autoRenew = optionalBoolean(body, 'auto_renew')
    const renewAt = optionalDateTime(body, 'renew_at')
    if (plan !== undefined) patch.plan = plan
    if (renewPlan !== undefined) patch.renewPlan = renewPlan
    if (maxSubscribers !== undefined) patch.maxSubscribers = maxSubscribers
    if (isActive !== undefined) patch.isActive = isActive
    if (autoRenew !== undefined) patch.autoRenew = autoRenew
    if (renewAt !== undefined) patch.renewAt = renewAt
    state.modifySubscription(subscription, patch)
    return customerSubscriptionWire(membership)
  })
  const members = '/customers/:customerId/subscriptions/:subscriptionId/customers'
  route('get', 'listSubscriptionCustomers', members, (ctx) => {
    const membership = state.membership(customerOf(ctx), pathUuid(param(ctx, 'subscriptionId'), 'subscription_id'))
    return [...membership.subscription.members.values()].map(subscriptionCustomerWire)
  })
  route('post', 'addSubscriptionCustomer', members, async (ctx) => {
    const acting = state.membership(customerOf(ctx), pathUuid(param(ctx, 'subscriptionId'), 'subscription_id'))
    const body = bodyObject(await readJson(ctx), true)
    const added = state.customer(requiredString(body, 'customer_id'))
    const options: Parameters<EmulatorState['addMember']>[2] = {
      isAdministrator: optionalBoolean(body, 'is_administrator'),
      isSubscriber: optionalBoolean(body, 'is_subscriber'),
      metadata: optionalObject(body, 'metadata'),
    }
    if (!acting.isAdministrator) throw new ApiError(403, 'Only subscription administrators can add customers')
    return subscriptionCustomerWire(state.addMember(acting.subscription, added, options))
  })
  route('delete', 'removeSubscriptionCustomer', `${members}/:memberId`, (ctx) => {
    const acting = state.membership(customerOf(ctx), pathUuid(param(ctx, 'subscriptionId'), 'subscription_id'))
    const removed = state.customer(param(ctx, 'memberId'))
    if (!acting.isAdministrator && removed.id !== acting.customerId) {
      throw new ApiError(403, 'Only subscription administrators can remove other customers')
    }
    return subscriptionCustomerInDbWire(state.removeMember(acting.subscription, removed.id))
  })
  route('post', 'createSubscription', '/products/:productSlug/plans/:planSlug/subscriptions', async (ctx) => {
    const product = productOf(ctx)
    const plan = product.plansBySlug.get(param(ctx, 'planSlug'))
    if (plan === undefined) throw notFound('Plan')
    const body = bodyObject(await readJson(ctx), true)
    const customer = state.customer(requiredString(body, 'customer_id'))
    // Absent fields stay undefined: subscribe() takes the plan's defaults for them.
    const options: Parameters<EmulatorState['subscribe']>[2] = {
      autoRenew: optionalBoolean(body, 'auto_renew'),
      renewAt: optionalDateTime(body, 'renew_at'),
      maxSubscribers: optionalInteger(body, 'max_subscribers'),
      isSubscriber: optionalBoolean(body, 'is_subscriber'),
      metadata: optionalObject(body, 'metadata'),
    }
    return subscriptionWithPlanWire(state.subscribe(customer, plan, options))
  })
  route('post', 'renewSubscription', '/subscriptions/:subscriptionId/renewals', (ctx) => {
    const subscription = state.findSubscription(pathUuid(param(ctx, 'subscriptionId'), 'subscription_id'))
    if (subscription === undefined) throw notFound('Subscription')
    state.renew(subscription)
    return subscriptionWithPlanWire(subscription)
  })

  // Products, levers, plans

  route('get', 'getProduct', '/products/:productSlug', (ctx) => productWire(productOf(ctx), state.catalog))
  route('get', 'listLevers', '/products/:productSlug/levers', (ctx) => productOf(ctx).levers.map(leverInListWire))
  route('get', 'getLever', '/products/:productSlug/levers/:leverSlug', (ctx) => {
    const lever = productOf(ctx).leversBySlug.get(param(ctx, 'leverSlug'))
    if (lever === undefined) throw notFound('Lever')
    return leverWire(lever)
  })
  route('get', 'listPlans', '/products/:productSlug/plans', (ctx) => productOf(ctx).plans.map(planInListWire))
  route('get', 'getPlan', '/products/:productSlug/plans/:planSlug', (ctx) => {
    const product = productOf(ctx)
    const plan = product.plansBySlug.get(param(ctx, 'planSlug'))
    if (plan === undefined) throw notFound('Plan')
    return planWire(plan, product)
  })

  return router
}
