import { createHash, randomUUID } from 'node:crypto'

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Whether `value` is written like a UUID (any version), as FastAPI's `UUID` path params require. */
export function isUuid(value: string): boolean {
  return UUID_RE.test(value)
}

/**
 * A name-based (version 5 layout) UUID, so fixture entities keep the same ids across runs and resets:
 * users may paste them into their own test data.
 */
export function uuidFromName(name: string): string {
  const hash = createHash('sha1').update(`planship-emulator:${name}`).digest()
  hash[6] = ((hash[6] ?? 0) & 0x0f) | 0x50
  hash[8] = ((hash[8] ?? 0) & 0x3f) | 0x80
  const hex = hash.subarray(0, 16).toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`
}

/** A fresh random UUID for entities created at run time. */
export function newUuid(): string {
  return randomUUID()
}
