import { createHash } from 'node:crypto'

/**
 * The key layout. Every key of one customer carries the same hash tag, so each script touches a
 * single Redis Cluster slot. The tag is a digest of the customer id, never the id itself:
 * ids may contain braces (`{`/`}` would move the tag) and must not be readable in key names.
 *
 * | key                      | type   | holds                                                    |
 * |--------------------------|--------|----------------------------------------------------------|
 * | `P{T}:u`                 | string | the customer's state (msgpack): reservations, pending and |
 * |                          |        | claimed usage, acknowledged usage, per-lever views       |
 * | `P{T}:c:<name>`[`:lock`] | string | a copy of Planship data (JSON) shared by the fleet, and   |
 * |                          |        | the lock of the one process reading Planship for it       |
 * | `P{ix}:all`              | zset   | every customer with a state, scored by when it was added |
 * | `P{ix}:due`              | zset   | customers with usage to send (a hint: `all` is the truth) |
 * | `P{ix}:stats`            | hash   | fleet delivery totals                                     |
 */
export interface KeyLayout {
  customer(tag: string): string
  /** A copy of Planship data shared by the fleet (`P{T}:c:entitlements`, `P{T}:c:usage:<id>`), and its lock. */
  copy(tag: string, name: string): string
  all: string
  due: string
  stats: string
}

export function keyLayout(prefix: string): KeyLayout {
  return {
    customer: (tag) => `${prefix}{${tag}}:u`,
    copy: (tag, name) => `${prefix}{${tag}}:c:${name}`,
    all: `${prefix}{ix}:all`,
    due: `${prefix}{ix}:due`,
    stats: `${prefix}{ix}:stats`,
  }
}

/** The customer's hash tag: 27 characters of base64url SHA-1, no braces, no id in clear. */
export function tagOf(customerId: string): string {
  return createHash('sha1').update(customerId).digest('base64url')
}
