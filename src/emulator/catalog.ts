import type {
  AggregationPeriod,
  AggregationScope,
  DurationUnit,
  EntitlementValue,
  Fixture,
  MeteringFormula,
} from './fixture.js'
import { uuidFromName } from './ids.js'

/** The immutable part of the emulator state: products with their levers and plans. */

export type LeverType = 'metered' | 'boolean' | 'integer' | 'list' | 'enum'

export interface Lever {
  id: string
  slug: string
  name: string
  description: string
  type: LeverType
  typeId: string
  productId: string
  order: number
  meteringIds: readonly string[]
  formula: MeteringFormula
  period: AggregationPeriod
  scope: AggregationScope
  defaultValue: EntitlementValue
  /** Enum levers only: allowed values, least permissive first. */
  values: ReadonlyArray<string | number> | undefined
}

export interface Plan {
  id: string
  slug: string
  name: string
  description: string
  productId: string
  order: number
  durationPeriod: number
  durationUnit: DurationUnit
  autoRenew: boolean
  /** Explicit entitlements only; levers missing here take their default. */
  entitlements: ReadonlyMap<string, EntitlementValue>
}

export interface Product {
  id: string
  slug: string
  name: string
  description: string
  levers: readonly Lever[]
  leversBySlug: ReadonlyMap<string, Lever>
  leversByMeteringId: ReadonlyMap<string, readonly Lever[]>
  plans: readonly Plan[]
  plansBySlug: ReadonlyMap<string, Plan>
}

export interface Catalog {
  organizationId: string
  products: readonly Product[]
  productsBySlug: ReadonlyMap<string, Product>
  productsById: ReadonlyMap<string, Product>
  plansById: ReadonlyMap<string, Plan>
}

const DEFAULTS: Record<LeverType, EntitlementValue> = {
  metered: 0,
  boolean: false,
  integer: 0,
  list: [],
  enum: '',
}

/** Builds the catalog of a validated fixture, filling every default. */
export function compileCatalog(fixture: Fixture): Catalog {
  const products: Product[] = []
  const plansById = new Map<string, Plan>()
  for (const p of fixture.products) {
    const productId = (p.id ?? uuidFromName(`product:${p.slug}`)).toLowerCase()
    const levers: Lever[] = p.levers.map((l, order) => {
      const metered = l.type === 'metered'
      return {
        id: (l.id ?? uuidFromName(`lever:${p.slug}:${l.slug}`)).toLowerCase(),
        slug: l.slug,
        name: l.name ?? l.slug,
        description: l.description ?? '',
        type: l.type,
        typeId: uuidFromName(`lever-type:${l.type}`),
        productId,
        order,
        meteringIds: metered ? [...l.meteringIds] : [],
        formula: (metered ? l.formula : undefined) ?? 'total',
        period: (metered ? l.period : undefined) ?? 'subscription',
        scope: (metered ? l.scope : undefined) ?? 'subscription',
        defaultValue: l.default ?? DEFAULTS[l.type],
        values: l.type === 'enum' ? l.values : undefined,
      }
    })
    const leversByMeteringId = new Map<string, Lever[]>()
    for (const lever of levers) {
      for (const meteringId of lever.meteringIds) {
        const list = leversByMeteringId.get(meteringId) ?? []
        list.push(lever)
        leversByMeteringId.set(meteringId, list)
      }
    }
    const plans: Plan[] = p.plans.map((pl, order) => ({
      id: (pl.id ?? uuidFromName(`plan:${p.slug}:${pl.slug}`)).toLowerCase(),
      slug: pl.slug,
      name: pl.name ?? pl.slug,
      description: pl.description ?? '',
      productId,
      order,
      durationPeriod: pl.durationPeriod ?? 1,
      durationUnit: pl.durationUnit ?? 'month',
      autoRenew: pl.autoRenew ?? true,
      entitlements: new Map(Object.entries(pl.entitlements ?? {})),
    }))
    for (const plan of plans) plansById.set(plan.id, plan)
    products.push({
      id: productId,
      slug: p.slug,
      name: p.name ?? p.slug,
      description: p.description ?? '',
      levers,
      leversBySlug: new Map(levers.map((l) => [l.slug, l])),
      leversByMeteringId,
      plans,
      plansBySlug: new Map(plans.map((pl) => [pl.slug, pl])),
    })
  }
  return {
    organizationId: uuidFromName('organization'),
    products,
    productsBySlug: new Map(products.map((p) => [p.slug, p])),
    productsById: new Map(products.map((p) => [p.id, p])),
    plansById,
  }
}

/** The value a plan grants for a lever, explicit or the lever's default. */
export function planValue(plan: Plan, lever: Lever): EntitlementValue {
  return plan.entitlements.get(lever.slug) ?? lever.defaultValue
}

/**
 * What a customer's plans grant together for a lever: the most-permissive merge of their values,
 * or the lever's default when there is no plan.
 */
export function grantedValue(lever: Lever, plans: Iterable<Plan>): EntitlementValue {
  let value: EntitlementValue | undefined
  for (const plan of plans) {
    const granted = planValue(plan, lever)
    value = value === undefined ? granted : mostPermissive(lever, value, granted)
  }
  return value ?? lever.defaultValue
}

/**
 * Most-permissive merge of two values of one lever (Planship's rule for customers with several
 * subscriptions): -1 beats any number, true beats false, lists are united.
 */
export function mostPermissive(lever: Lever, a: EntitlementValue, b: EntitlementValue): EntitlementValue {
  switch (lever.type) {
    case 'metered':
    case 'integer': {
      const x = a as number
      const y = b as number
      if (x === -1 || y === -1) return -1
      return Math.max(x, y)
    }
    case 'boolean':
      return (a as boolean) || (b as boolean)
    case 'list': {
      const merged = [...(a as Array<string | number | boolean>)]
      for (const item of b as Array<string | number | boolean>) if (!merged.includes(item)) merged.push(item)
      return merged
    }
    case 'enum': {
      if (lever.values === undefined) return a
      return lever.values.indexOf(b as string | number) > lever.values.indexOf(a as string | number) ? b : a
    }
  }
}
