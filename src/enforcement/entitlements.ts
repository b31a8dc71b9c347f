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

/**
 * The remaining allowance a metered entitlement gives for `bucket`: `undefined` when unlimited,
 * 0 when the lever is missing (no access). Per-bucket levers come as a map keyed by bucket,
 * `"null"` being unbucketed usage; a bucket Planship has not seen yet falls back to `"null"`.
 */
export function remainingAllowance(
  value: EntitlementValue | undefined,
  bucket: string | undefined,
): number | undefined {
  if (typeof value === 'number') return value === UNLIMITED ? undefined : value
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    return remainingAllowance(value[bucket ?? 'null'] ?? value['null'], undefined)
  }
  // A lever that is not metered cannot run out: true lets usage through, anything falsy blocks it.
  return isEntitled(value) ? undefined : 0
}

/** Per-bucket metered levers send a map keyed by bucket instead of a number. */
export function isPerBucket(value: EntitlementValue | undefined): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
