import { createRequire } from 'node:module'
import type * as OtelApi from '@opentelemetry/api'

export type { OtelApi }

let loaded: typeof OtelApi | null | undefined

/**
 * `@opentelemetry/api`, or `undefined` when the app did not install it (it is an optional peer
 * dependency). Loaded with a synchronous `require` rather than a top-level `await import()`:
 * top-level await would make this package an async module, which `require(esm)` consumers
 * cannot load, and `createMeter()` must stay synchronous. The API keeps its registered providers
 * on `globalThis`, so this CommonJS copy sees what the app registered through `import` too.
 */
export function loadOtelApi(): typeof OtelApi | undefined {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('@opentelemetry/api') as typeof OtelApi
    } catch {
      loaded = null // not installed: instrumentation is off, nothing else changes
    }
  }
  return loaded ?? undefined
}
