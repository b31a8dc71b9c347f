/**
 * Which rate-limit headers a metered response carries: `'draft'` is `RateLimit-Policy` and
 * `RateLimit` of the IETF httpapi draft, `'legacy'` is `X-RateLimit-Limit/Remaining/Reset`,
 * `false` is none (a 429 still says `Retry-After` when the reset is known).
 */
export type HeaderStyle = 'draft' | 'legacy' | false

/** What the headers describe: the lever with the least room. */
export interface Quota {
  lever: string
  remaining: number
  /** The lever's whole allowance, when known. */
  limit: number | undefined
  /** Seconds until the allowance comes back, when known (a rolling window, a renewal). */
  resetSeconds: number | undefined
  /** A rolling window's length in seconds, when the lever has one. */
  windowSeconds: number | undefined
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

/** The rate-limit headers of `quota` in `style` (draft-ietf-httpapi-ratelimit-headers: one named policy per lever). */
export function rateLimitHeaders(style: HeaderStyle, quota: Quota, nowMs: number): Record<string, string> {
  if (style === false) return {}
  const { remaining, limit, resetSeconds, windowSeconds } = quota
  if (style === 'legacy') {
    const headers: Record<string, string> = {}
    if (limit !== undefined) headers['X-RateLimit-Limit'] = String(limit)
    headers['X-RateLimit-Remaining'] = String(remaining)
    // Epoch seconds, as GitHub and express-rate-limit's legacy headers send it.
    if (resetSeconds !== undefined) headers['X-RateLimit-Reset'] = String(Math.ceil(nowMs / 1000) + resetSeconds)
    return headers
  }
  const name = sfString(quota.lever)
  const headers: Record<string, string> = {
    RateLimit: resetSeconds === undefined ? `${name};r=${remaining}` : `${name};r=${remaining};t=${resetSeconds}`,
  }
  if (limit !== undefined)
    headers['RateLimit-Policy'] =
      windowSeconds === undefined ? `${name};q=${limit}` : `${name};q=${limit};w=${windowSeconds}`
  return headers
}
