/**
 * Which rate-limit headers a metered response carries: `'draft'` is `RateLimit-Policy` and
 * `RateLimit` of the IETF httpapi draft, `'legacy'` is `X-RateLimit-Limit/Remaining/Reset`,
 * `false` is none (a 429 still says `Retry-After` when the reset is known).
 */
export type HeaderStyle = 'draft' | 'legacy' | false

/** When the allowance comes back, when known. */
export interface Reset {
  /** Seconds until the allowance comes back (a rolling window, a renewal). */
  resetSeconds?: number | undefined
  /** A rolling window's length in seconds, when the lever has one. */
  windowSeconds?: number | undefined
}

/** Lever slugs as structured-field strings, built once per lever, not per response. */
const names = new Map<string, string>()
const MAX_NAMES = 1_000

/** A structured-field string (RFC 8941 §3.3.3). */
function sfString(value: string): string {
  let name = names.get(value)
  if (name === undefined) {
    name = `"${value.replace(/[^\x20-\x7e]/g, '?').replace(/[\\"]/g, '\\$&')}"`
    if (names.size >= MAX_NAMES) names.clear()
    names.set(value, name)
  }
  return name
}

/**
 * The last `RateLimit-Policy` of each lever: it changes with the customer's plan only, so it is
 * built once per lever and allowance, not per response.
 */
const policies = new Map<string, { limit: number; windowSeconds: number | undefined; value: string }>()

function policy(lever: string, limit: number, windowSeconds: number | undefined): string {
  const known = policies.get(lever)
  if (known !== undefined && known.limit === limit && known.windowSeconds === windowSeconds) return known.value
  const name = sfString(lever)
  const value = windowSeconds === undefined ? `${name};q=${limit}` : `${name};q=${limit};w=${windowSeconds}`
  if (known === undefined && policies.size >= MAX_NAMES) policies.clear()
  policies.set(lever, { limit, windowSeconds, value })
  return value
}

/**
 * The rate-limit headers in `style` of the lever with the least room (draft-ietf-httpapi-ratelimit-headers:
 * one named policy per lever): `remaining` units left of `limit` (when known), back per `reset`.
 */
export function rateLimitHeaders(
  style: HeaderStyle,
  lever: string,
  remaining: number,
  limit: number | undefined,
  reset: Reset | undefined,
  nowMs: number,
): Record<string, string> {
  if (style === false) return {}
  const resetSeconds = reset?.resetSeconds
  if (style === 'legacy') {
    const headers: Record<string, string> = {}
    if (limit !== undefined) headers['X-RateLimit-Limit'] = String(limit)
    headers['X-RateLimit-Remaining'] = String(remaining)
    // Epoch seconds, as GitHub and express-rate-limit's legacy headers send it.
    if (resetSeconds !== undefined) headers['X-RateLimit-Reset'] = String(Math.ceil(nowMs / 1000) + resetSeconds)
    return headers
  }
  const name = sfString(lever)
  const rateLimit = resetSeconds === undefined ? `${name};r=${remaining}` : `${name};r=${remaining};t=${resetSeconds}`
  return limit === undefined
    ? { RateLimit: rateLimit }
    : { RateLimit: rateLimit, 'RateLimit-Policy': policy(lever, limit, reset?.windowSeconds) }
}
