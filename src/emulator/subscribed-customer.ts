import { ApiError, invalid } from './api-error.js'
import type { Product } from './catalog.js'
import type { Customer, EmulatorState } from './state.js'

/** A customer to create already subscribed to a plan: `emu.createCustomer()`, `POST /_emulator/customers`. */
export interface NewCustomer {
  /** Your id for the customer (e-mail, `stripe:cus_…`), usable instead of the UUID in every path. */
  alternativeId: string
  /** Slug of the plan to subscribe to. Defaults to the product's first plan. */
  plan?: string
  /** Slug of the plan's product. Defaults to the fixture's first product. */
  product?: string
  /** Defaults to `''`. */
  name?: string
  /** Defaults to `''`. */
  email?: string
  /** Defaults to `{}`. */
  metadata?: Record<string, unknown>
}

/**
 * Creates the customer and its subscription. Throws an {@link ApiError}: 422 with `loc`
 * `['body', 'product' | 'plan']` for a slug the fixture does not have, 409 for a taken alternative
 * id. Everything is checked before anything is created, so a refusal leaves no half-made customer.
 */
export function createSubscribedCustomer(state: EmulatorState, input: NewCustomer): Customer {
  const products = state.catalog.products
  const product = input.product === undefined ? products[0] : state.catalog.productsBySlug.get(input.product)
  if (product === undefined) throw notOneOf('product', products)
  const plan = input.plan === undefined ? product.plans[0] : product.plansBySlug.get(input.plan)
  if (plan === undefined) throw notOneOf('plan', product.plans)
  if (state.findCustomer(input.alternativeId) !== undefined) {
    throw new ApiError(409, `A customer with alternative_id ${input.alternativeId} already exists`)
  }
  const customer = state.createCustomer({
    alternativeId: input.alternativeId,
    name: input.name ?? '',
    email: input.email ?? '',
    metadata: input.metadata ?? {},
  })
  state.subscribe(customer, plan)
  return customer
}

/** pydantic's wording for a value outside an enumeration, listing what is permitted. */
function notOneOf(key: string, options: ReadonlyArray<Pick<Product, 'slug'>>): ApiError {
  const permitted = options.map((o) => `'${o.slug}'`).join(', ')
  return invalid(['body', key], `value is not a valid enumeration member; permitted: ${permitted}`, 'type_error.enum')
}
