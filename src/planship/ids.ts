/** Planship's limit for alternative ids; longer values cannot name a customer. */
export const MAX_CUSTOMER_ID_LENGTH = 256

// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/
/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Why `value` cannot be sent as one path segment naming a customer (or a metering id), or
 * `undefined` when it can. `.` and `..` are dot segments to every URL parser, even
 * percent-encoded, so they would change the path; a lone surrogate cannot be encoded at all.
 */
export function pathSegmentProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return `is a ${value === null ? 'null' : typeof value}, not a string`
  if (value.length === 0) return 'is empty'
  if (value.length > MAX_CUSTOMER_ID_LENGTH) return `is longer than ${MAX_CUSTOMER_ID_LENGTH} characters`
  if (value === '.' || value === '..') return 'is a dot segment'
  if (CONTROL_CHARACTERS.test(value)) return 'contains a control character'
  if (LONE_SURROGATE.test(value)) return 'contains a lone UTF-16 surrogate'
  return undefined
}
