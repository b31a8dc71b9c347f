import type { Transport } from '../planship/transport.js'

/**
 * Wraps the Planship client's transports so that every HTTP call gets a span and a duration.
 * Kept apart from the OpenTelemetry code: the client's declarations reach this file, and a
 * TypeScript app without `@opentelemetry/api` must still type-check them.
 */
export interface ClientInstrumentation {
  /** The API calls (entitlements, usage, reports), whose paths are relative to `baseUrl`. */
  transport(transport: Transport, baseUrl: string): Transport
  /** The token requests, which openid-client sends through a fetch. */
  fetch(fetchImpl: typeof fetch): typeof fetch
}
