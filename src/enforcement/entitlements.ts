import type { EntitlementValue } from '../planship/types.js'

/** Planship's marker for an unlimited metered lever (and an infinite integer lever). */
export const UNLIMITED = -1

/**
 * Whether an entitlement grants a feature: boolean `true`, a number other than 0 (so `-1`,
 * unlimited, grants), a non-empty list or string, or a per-bucket map with any allowance.
 */
export function isEntitled(value: EntitlementValue | undefined): boolean {
  if (typeof value === 'boolean') return value
  if (typeof value === 'number') return value !== 0
  if (typeof value === 'string') return value.length > 0
  if (Array.isArray(value)) return value.length > 0
  if (typeof value === 'object' && value !== null) return Object.values(value).some((units) => units !== 0)
  return false
}

/** A metered entitlement Planship cannot mean (`"lots"`, `true`, `1e999`, `{"null":"x"}` …). */
export const INVALID = Symbol('invalid entitlement')

/** A metered allowance on the wire: a whole number of units, or -1 for unlimited. */
function isAllowance(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= UNLIMITED
}

const validMaps = new WeakMap<object, boolean>()

/** Whether a per-bucket entitlement is a map of allowances; checked once per answer. */
function isAllowanceMap(value: object): value is Record<string, number> {
  let valid = validMaps.get(value)
  if (valid === undefined) {
    const units = Object.values(value)
    valid = !Array.isArray(value) && units.length > 0 && units.every(isAllowance)
    validMaps.set(value, valid)
  }
  return valid
}

/**
 * The remaining allowance a metered entitlement gives for `bucket`: `undefined` when unlimited,
 * 0 when the lever is missing (no access), `null` for a bucket a per-bucket lever has not seen
 * yet (it has the whole per-bucket allowance), {@link INVALID} for anything else. Per-bucket
 * levers come as a map keyed by bucket, `"null"` being unbucketed usage.
 */
export function meteredRemaining(
  value: EntitlementValue | undefined,
  bucket: string | undefined,
): number | undefined | null | typeof INVALID {
  if (value === undefined) return 0
  if (typeof value === 'number') return isAllowance(value) ? (value === UNLIMITED ? undefined : value) : INVALID
  if (typeof value !== 'object' || value === null || !isAllowanceMap(value)) return INVALID
  const key = bucket ?? 'null'
  if (!Object.hasOwn(value, key)) return null
  return value[key] === UNLIMITED ? undefined : value[key]
}

/**
 * The whole allowance of a bucket a per-bucket lever has not seen: what any bucket it has seen
 * has left plus what that bucket used (`undefined` when unlimited).
 */
export function fullBucketAllowance(
  value: Record<string, number>,
  usage: { by_bucket: Record<string, number> } | undefined,
): number | undefined {
  const seen = Object.hasOwn(value, 'null') ? 'null' : Object.keys(value)[0]!
  const remaining = value[seen]!
  return remaining === UNLIMITED ? undefined : remaining + (usage?.by_bucket[seen] ?? 0)
}

/** Per-bucket metered levers send a map keyed by bucket instead of a number. */
export function isPerBucket(value: EntitlementValue | undefined): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
