import { readFileSync } from 'node:fs'

/**
 * How a metered lever turns its metering records into one number.
 * - `'total'`: the sum of `usage`, buckets ignored.
 * - `'per-bucket'`: the sum of `usage` per bucket; the limit applies to each bucket on its own.
 * - `'unique-buckets'`: the number of distinct (non-null) bucket names, e.g. monthly active users.
 */
export type MeteringFormula = 'total' | 'per-bucket' | 'unique-buckets'

/**
 * Which records of a metered lever count now.
 * - `'subscription'`: those since the subscription's last renewal (reset on renewal).
 * - `'all-time'`: all of them.
 * - `{ windowSeconds }`: those of the last `windowSeconds` seconds (a rolling window).
 */
export type AggregationPeriod = 'subscription' | 'all-time' | { windowSeconds: number }

/**
 * Whose records a metered lever counts.
 * - `'subscription'`: the records of every customer of the subscription (team plans share usage).
 * - `'customer'`: only the customer's own records.
 */
export type AggregationScope = 'subscription' | 'customer'

/** Unit of a plan's duration. `'perpetual'` plans never renew. */
export type DurationUnit = 'minute' | 'hour' | 'day' | 'week' | 'month' | 'year' | 'perpetual'

/** A value a plan can grant for a lever (and what entitlements answer for non-metered levers). */
export type EntitlementValue = boolean | number | string | Array<string | number | boolean>

/** One client id / client secret pair that may request tokens. */
export interface FixtureCredentials {
  clientId: string
  clientSecret: string
}

interface FixtureLeverBase {
  /** Unique within the product; the key in entitlements. */
  slug: string
  /** Defaults to the slug. */
  name?: string
  /** Defaults to `''`. */
  description?: string
  /** Planship UUID. Defaults to a UUID derived from the product and lever slugs (stable across runs). */
  id?: string
}

/** A usage-based lever: its entitlement is the remaining allowance. */
export interface FixtureMeteredLever extends FixtureLeverBase {
  type: 'metered'
  /** Metering ids whose records this lever sums (one metering id may feed several levers). */
  meteringIds: string[]
  /** Defaults to `'total'`. */
  formula?: MeteringFormula
  /** Defaults to `'subscription'`. */
  period?: AggregationPeriod
  /** Defaults to `'subscription'`. */
  scope?: AggregationScope
  /** Limit for plans without an explicit entitlement; `-1` is unlimited, `0` no access. Defaults to `0`. */
  default?: number
}

/** An on/off feature flag. */
export interface FixtureBooleanLever extends FixtureLeverBase {
  type: 'boolean'
  /** Defaults to `false`. */
  default?: boolean
}

/** A numeric limit on something Planship does not count (e.g. projects); `-1` is unlimited. */
export interface FixtureIntegerLever extends FixtureLeverBase {
  type: 'integer'
  /** Defaults to `0`. */
  default?: number
}

/** A list of values, e.g. enabled integrations. */
export interface FixtureListLever extends FixtureLeverBase {
  type: 'list'
  /** Defaults to `[]`. */
  default?: Array<string | number | boolean>
}

/** One value out of a set. */
export interface FixtureEnumLever extends FixtureLeverBase {
  type: 'enum'
  /**
   * The allowed values, least permissive first; the most-permissive merge of several subscriptions
   * picks the latest of them. Defaults to no restriction (the merge then keeps the first subscription's value).
   */
  values?: Array<string | number>
  /** Required. */
  default: string | number
}

/** A lever definition; `type` selects the kind. */
export type FixtureLever =
  FixtureMeteredLever | FixtureBooleanLever | FixtureIntegerLever | FixtureListLever | FixtureEnumLever

/** A plan of a product. */
export interface FixturePlan {
  /** Unique within the product. */
  slug: string
  /** Defaults to the slug. */
  name?: string
  /** Defaults to `''`. */
  description?: string
  /** Planship UUID. Defaults to a UUID derived from the slugs (stable across runs). */
  id?: string
  /** Number of `durationUnit`s in one subscription period. Defaults to `1`. */
  durationPeriod?: number
  /** Defaults to `'month'`. */
  durationUnit?: DurationUnit
  /** Whether new subscriptions renew at the end of a period. Defaults to `true`. */
  autoRenew?: boolean
  /** `{ leverSlug: value }`; levers not listed get their default. Defaults to `{}`. */
  entitlements?: Record<string, EntitlementValue>
}

/** A product with its levers and plans. */
export interface FixtureProduct {
  slug: string
  /** Defaults to the slug. */
  name?: string
  /** Defaults to `''`. */
  description?: string
  /** Planship UUID. Defaults to a UUID derived from the slug (stable across runs). */
  id?: string
  levers: FixtureLever[]
  plans: FixturePlan[]
}

/** A subscription of a fixture customer, by slugs. */
export interface FixtureSubscription {
  product: string
  plan: string
  /** Defaults to the plan's `autoRenew`. */
  autoRenew?: boolean
}

/** A customer present from the start. */
export interface FixtureCustomer {
  /** Your own id for the customer (e-mail, `stripe:cus_…`); usable instead of the UUID in every path. */
  alternativeId?: string
  /** Planship UUID. Defaults to a UUID derived from the alternative id (stable across runs). */
  id?: string
  /** Defaults to `''`. */
  name?: string
  /** Defaults to `''`. */
  email?: string
  /** Defaults to `{}`. */
  metadata?: Record<string, unknown>
  /** Each becomes an active subscription started when the emulator starts (or resets). Defaults to `[]`. */
  subscriptions?: FixtureSubscription[]
}

/** Everything the emulator starts with (and returns to on `reset()`). */
export interface Fixture {
  /** Defaults to `[{ clientId: 'demo-client-id', clientSecret: 'demo-client-secret' }]`. */
  credentials?: FixtureCredentials[]
  /** At least one. */
  products: FixtureProduct[]
  /** Defaults to `[]`. */
  customers?: FixtureCustomer[]
}

/** The demo product of the README and the example app. */
export const defaultFixture: Fixture = {
  credentials: [{ clientId: 'demo-client-id', clientSecret: 'demo-client-secret' }],
  products: [
    {
      slug: 'acme-api',
      name: 'Acme API',
      levers: [
        {
          slug: 'api-calls',
          name: 'API calls',
          type: 'metered',
          meteringIds: ['api-call'],
          formula: 'total',
          period: 'subscription',
          scope: 'subscription',
          default: 0,
        },
        {
          slug: 'renders-per-minute',
          name: 'Renders per minute',
          type: 'metered',
          meteringIds: ['render'],
          formula: 'total',
          period: { windowSeconds: 60 },
          scope: 'subscription',
          default: 0,
        },
        { slug: 'csv-export', name: 'CSV export', type: 'boolean', default: false },
        { slug: 'max-projects', name: 'Max projects', type: 'integer', default: 0 },
        {
          // Per bucket: each project (the bucket of a report) has its own allowance per period.
          slug: 'exports-per-project',
          name: 'Exports per project',
          type: 'metered',
          meteringIds: ['export'],
          formula: 'per-bucket',
          period: 'subscription',
          scope: 'subscription',
          default: 0,
        },
      ],
      plans: [
        {
          slug: 'free',
          name: 'Free',
          durationPeriod: 1,
          durationUnit: 'month',
          autoRenew: true,
          entitlements: {
            'api-calls': 100,
            'renders-per-minute': 5,
            'csv-export': false,
            'max-projects': 3,
            'exports-per-project': 10,
          },
        },
        {
          slug: 'pro',
          name: 'Pro',
          durationPeriod: 1,
          durationUnit: 'month',
          autoRenew: true,
          entitlements: {
            'api-calls': 10000,
            'renders-per-minute': 100,
            'csv-export': true,
            'max-projects': -1,
            'exports-per-project': 1000,
          },
        },
      ],
    },
  ],
  customers: [
    { alternativeId: 'free-customer', name: 'Free Customer', subscriptions: [{ product: 'acme-api', plan: 'free' }] },
    { alternativeId: 'pro-customer', name: 'Pro Customer', subscriptions: [{ product: 'acme-api', plan: 'pro' }] },
  ],
}

const DEFAULT_CREDENTIALS: FixtureCredentials[] = [{ clientId: 'demo-client-id', clientSecret: 'demo-client-secret' }]
const FORMULAS: readonly string[] = ['total', 'per-bucket', 'unique-buckets']
const SCOPES: readonly string[] = ['subscription', 'customer']
const DURATION_UNITS: readonly string[] = ['minute', 'hour', 'day', 'week', 'month', 'year', 'perpetual']
const LEVER_TYPES: readonly string[] = ['metered', 'boolean', 'integer', 'list', 'enum']
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * Returns a validated fixture: `fixtureOrPath` itself, or the JSON file at that path.
 * Throws a `TypeError` naming the offending field (e.g. `fixture.products[0].levers[1].formula`).
 * Defaults to {@link defaultFixture} when `fixtureOrPath` is undefined.
 */
export function loadFixture(fixtureOrPath?: Fixture | string): Fixture {
  if (fixtureOrPath === undefined) return defaultFixture
  let raw: unknown = fixtureOrPath
  if (typeof fixtureOrPath === 'string') {
    let text: string
    try {
      text = readFileSync(fixtureOrPath, 'utf8')
    } catch (error) {
      throw new TypeError(`fixture file ${fixtureOrPath} cannot be read: ${(error as Error).message}`, {
        cause: error,
      })
    }
    try {
      raw = JSON.parse(text)
    } catch (error) {
      throw new TypeError(`fixture file ${fixtureOrPath} is not valid JSON: ${(error as Error).message}`, {
        cause: error,
      })
    }
  }
  validateFixture(raw)
  return raw
}

/** Throws a `TypeError` naming the first invalid field of `value`. */
export function validateFixture(value: unknown): asserts value is Fixture {
  const fixture = object(value, 'fixture', ['credentials', 'products', 'customers'])

  if (fixture.credentials !== undefined) {
    const credentials = array(fixture.credentials, 'fixture.credentials')
    if (credentials.length === 0) fail('fixture.credentials', 'must not be empty')
    credentials.forEach((entry, i) => {
      const path = `fixture.credentials[${i}]`
      const c = object(entry, path, ['clientId', 'clientSecret'])
      nonEmptyString(c.clientId, `${path}.clientId`)
      nonEmptyString(c.clientSecret, `${path}.clientSecret`)
    })
  }

  const products = array(fixture.products, 'fixture.products')
  if (products.length === 0) fail('fixture.products', 'must contain at least one product')
  const productSlugs = new Set<string>()
  const plansByProduct = new Map<string, Set<string>>()
  products.forEach((entry, i) => {
    const path = `fixture.products[${i}]`
    const product = object(entry, path, ['slug', 'name', 'description', 'id', 'levers', 'plans'])
    const slug = nonEmptyString(product.slug, `${path}.slug`)
    if (productSlugs.has(slug)) fail(`${path}.slug`, `duplicates product "${slug}"`)
    productSlugs.add(slug)
    commonOptionalFields(product, path)

    const levers = new Map<string, Record<string, unknown>>()
    array(product.levers, `${path}.levers`).forEach((leverEntry, j) => {
      const lever = validateLever(leverEntry, `${path}.levers[${j}]`)
      if (levers.has(lever.slug as string))
        fail(`${path}.levers[${j}].slug`, `duplicates lever "${String(lever.slug)}"`)
      levers.set(lever.slug as string, lever)
    })

    const planSlugs = new Set<string>()
    array(product.plans, `${path}.plans`).forEach((planEntry, j) => {
      const planPath = `${path}.plans[${j}]`
      const plan = object(planEntry, planPath, [
        'slug',
        'name',
        'description',
        'id',
        'durationPeriod',
        'durationUnit',
        'autoRenew',
        'entitlements',
      ])
      const planSlug = nonEmptyString(plan.slug, `${planPath}.slug`)
      if (planSlugs.has(planSlug)) fail(`${planPath}.slug`, `duplicates plan "${planSlug}"`)
      planSlugs.add(planSlug)
      commonOptionalFields(plan, planPath)
      if (
        plan.durationPeriod !== undefined &&
        !(Number.isSafeInteger(plan.durationPeriod) && (plan.durationPeriod as number) > 0)
      ) {
        fail(`${planPath}.durationPeriod`, 'must be a positive integer')
      }
      if (plan.durationUnit !== undefined) oneOf(plan.durationUnit, DURATION_UNITS, `${planPath}.durationUnit`)
      if (plan.autoRenew !== undefined && typeof plan.autoRenew !== 'boolean')
        fail(`${planPath}.autoRenew`, 'must be a boolean')
      if (plan.entitlements !== undefined) {
        const entitlements = object(plan.entitlements, `${planPath}.entitlements`)
        for (const [leverSlug, entitlement] of Object.entries(entitlements)) {
          const lever = levers.get(leverSlug)
          const entitlementPath = `${planPath}.entitlements[${JSON.stringify(leverSlug)}]`
          if (lever === undefined) fail(entitlementPath, `names no lever of product "${slug}"`)
          leverValue(lever, entitlement, entitlementPath)
        }
      }
    })
    plansByProduct.set(slug, planSlugs)
  })

  if (fixture.customers !== undefined) {
    const alternativeIds = new Set<string>()
    const ids = new Set<string>()
    array(fixture.customers, 'fixture.customers').forEach((entry, i) => {
      const path = `fixture.customers[${i}]`
      const customer = object(entry, path, ['alternativeId', 'id', 'name', 'email', 'metadata', 'subscriptions'])
      if (customer.alternativeId !== undefined) {
        const alternativeId = nonEmptyString(customer.alternativeId, `${path}.alternativeId`)
        if (alternativeId.length > 256) fail(`${path}.alternativeId`, 'must be at most 256 characters')
        if (alternativeIds.has(alternativeId)) fail(`${path}.alternativeId`, `duplicates "${alternativeId}"`)
        alternativeIds.add(alternativeId)
      } else if (customer.id === undefined) {
        fail(`${path}`, 'needs an alternativeId or an id')
      }
      if (customer.id !== undefined) {
        const id = uuid(customer.id, `${path}.id`)
        if (ids.has(id)) fail(`${path}.id`, `duplicates "${id}"`)
        ids.add(id)
      }
      for (const key of ['name', 'email'] as const) {
        if (customer[key] !== undefined && typeof customer[key] !== 'string') fail(`${path}.${key}`, 'must be a string')
      }
      if (customer.metadata !== undefined) object(customer.metadata, `${path}.metadata`)
      if (customer.subscriptions !== undefined) {
        array(customer.subscriptions, `${path}.subscriptions`).forEach((subEntry, j) => {
          const subPath = `${path}.subscriptions[${j}]`
          const sub = object(subEntry, subPath, ['product', 'plan', 'autoRenew'])
          const productSlug = nonEmptyString(sub.product, `${subPath}.product`)
          const plans = plansByProduct.get(productSlug)
          if (plans === undefined) fail(`${subPath}.product`, `names no product of the fixture ("${productSlug}")`)
          const planSlug = nonEmptyString(sub.plan, `${subPath}.plan`)
          if (!plans.has(planSlug)) fail(`${subPath}.plan`, `names no plan of product "${productSlug}" ("${planSlug}")`)
          if (sub.autoRenew !== undefined && typeof sub.autoRenew !== 'boolean')
            fail(`${subPath}.autoRenew`, 'must be a boolean')
        })
      }
    })
  }
}

/** The fixture's credentials, or the demo pair when it has none. */
export function fixtureCredentials(fixture: Fixture): FixtureCredentials[] {
  return fixture.credentials ?? DEFAULT_CREDENTIALS
}

function validateLever(value: unknown, path: string): Record<string, unknown> {
  const lever = object(value, path, [
    'slug',
    'name',
    'description',
    'id',
    'type',
    'meteringIds',
    'formula',
    'period',
    'scope',
    'default',
    'values',
  ])
  nonEmptyString(lever.slug, `${path}.slug`)
  commonOptionalFields(lever, path)
  const type = oneOf(lever.type, LEVER_TYPES, `${path}.type`)
  const allowed: Record<string, readonly string[]> = {
    metered: ['meteringIds', 'formula', 'period', 'scope'],
    enum: ['values'],
  }
  for (const key of ['meteringIds', 'formula', 'period', 'scope', 'values']) {
    if (lever[key] !== undefined && !(allowed[type] ?? []).includes(key)) {
      fail(`${path}.${key}`, `is not allowed on a ${type} lever`)
    }
  }
  if (type === 'metered') {
    const meteringIds = array(lever.meteringIds, `${path}.meteringIds`)
    if (meteringIds.length === 0) fail(`${path}.meteringIds`, 'must contain at least one metering id')
    meteringIds.forEach((id, k) => nonEmptyString(id, `${path}.meteringIds[${k}]`))
    if (lever.formula !== undefined) oneOf(lever.formula, FORMULAS, `${path}.formula`)
    if (lever.scope !== undefined) oneOf(lever.scope, SCOPES, `${path}.scope`)
    if (lever.period !== undefined && lever.period !== 'subscription' && lever.period !== 'all-time') {
      const period = object(lever.period, `${path}.period`, ['windowSeconds'])
      if (!(
        typeof period.windowSeconds === 'number' &&
        Number.isFinite(period.windowSeconds) &&
        period.windowSeconds > 0
      )) {
        fail(`${path}.period.windowSeconds`, 'must be a positive number')
      }
    }
  }
  if (type === 'enum') {
    if (lever.values !== undefined) {
      array(lever.values, `${path}.values`).forEach((v, k) => {
        if (typeof v !== 'string' && typeof v !== 'number') fail(`${path}.values[${k}]`, 'must be a string or a number')
      })
    }
    if (lever.default === undefined) fail(`${path}.default`, 'is required on an enum lever')
  }
  if (lever.default !== undefined) leverValue(lever, lever.default, `${path}.default`)
  return lever
}

/** Checks that `value` suits the lever's type. */
function leverValue(lever: Record<string, unknown>, value: unknown, path: string): void {
  switch (lever.type) {
    case 'metered':
    case 'integer':
      if (!Number.isSafeInteger(value) || (value as number) < -1)
        fail(path, 'must be an integer >= -1 (-1 is unlimited)')
      return
    case 'boolean':
      if (typeof value !== 'boolean') fail(path, 'must be a boolean')
      return
    case 'list':
      array(value, path).forEach((item, k) => {
        if (!['string', 'number', 'boolean'].includes(typeof item))
          fail(`${path}[${k}]`, 'must be a string, number or boolean')
      })
      return
    case 'enum': {
      if (typeof value !== 'string' && typeof value !== 'number') fail(path, 'must be a string or a number')
      const values = lever.values as unknown[] | undefined
      if (values !== undefined && !values.includes(value)) fail(path, `must be one of ${JSON.stringify(values)}`)
      return
    }
  }
}

function commonOptionalFields(record: Record<string, unknown>, path: string): void {
  for (const key of ['name', 'description']) {
    if (record[key] !== undefined && typeof record[key] !== 'string') fail(`${path}.${key}`, 'must be a string')
  }
  if (record.id !== undefined) uuid(record.id, `${path}.id`)
}

function fail(path: string, message: string): never {
  throw new TypeError(`${path} ${message}`)
}

/** Plain object check; with `keys`, unknown keys are rejected (keys starting with `$` are comments). */
function object(value: unknown, path: string, keys?: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, 'must be an object')
  const record = value as Record<string, unknown>
  if (keys !== undefined) {
    for (const key of Object.keys(record)) {
      if (!key.startsWith('$') && !keys.includes(key))
        fail(`${path}.${key}`, `is not a known field (expected one of ${keys.join(', ')})`)
    }
  }
  return record
}

function array(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) fail(path, 'must be an array')
  return value
}

function nonEmptyString(value: unknown, path: string): string {
  if (typeof value !== 'string' || value.length === 0) fail(path, 'must be a non-empty string')
  return value
}

function oneOf(value: unknown, allowed: readonly string[], path: string): string {
  if (typeof value !== 'string' || !allowed.includes(value))
    fail(path, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}`)
  return value
}

function uuid(value: unknown, path: string): string {
  if (typeof value !== 'string' || !UUID_RE.test(value)) fail(path, 'must be a UUID')
  return value.toLowerCase()
}
