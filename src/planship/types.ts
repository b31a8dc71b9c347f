/** Wire types of the Planship API 0.3.1 (snake_case, as sent and received). */

/** Entitlement value of one lever: booleans, numbers (metered: the remaining allowance), lists, or per-bucket maps. */
export type EntitlementValue = boolean | number | string | Array<string | number | boolean> | Record<string, number>

/** `GET /customers/{id}/products/{slug}/entitlements`: lever slug → value. */
export type Entitlements = Record<string, EntitlementValue>

/** `GET …/levers/{lever}/usage`, and each value of `GET …/usage/{metering_id}`. */
export interface LeverUsage {
  total: number
  by_bucket: Record<string, number>
  by_subscription: Record<string, Array<{ usage: number; bucket: string | null }>>
}

/** `POST …/usage/{metering_id}` answer. */
export interface MeteringRecord {
  id: string
  is_allocated?: boolean
  usage: number
  metering_id: string
  customer_id: string
  product_id: string
  subscription_id?: string | null
  bucket?: string | null
}

/** `GET /customers/{id}`. */
export interface Customer {
  id: string
  alternative_id?: string | null
  name?: string
  email?: string
  organization_id?: string
  metadata_?: Record<string, unknown> | null
}

/** `GET /products/{slug}` (the fields the meter reads). */
export interface Product {
  id: string
  slug: string
  name?: string
}

/** `GET /products/{slug}/levers/{lever}` (the fields the meter reads). `configuration` is free-form. */
export interface Lever {
  slug: string
  metering_ids?: string[]
  configuration?: Record<string, unknown> | null
}

/** An item of `GET /products/{slug}/levers` (the fields the meter reads). */
export interface LeverInList {
  slug: string
}

/** An item of `GET /customers/{id}/subscriptions` (the fields the meter reads). */
export interface CustomerSubscription {
  subscription_id?: string
  is_active?: boolean
  renew_at?: string | null
}
