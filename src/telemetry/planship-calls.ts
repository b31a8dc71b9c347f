import { errnoOf } from '../errors.js'
import type { ClientInstrumentation } from './client-hook.js'
import type { OtelApi } from './otel-api.js'

/** Low-cardinality names of the Planship calls, the `planship_meter.endpoint` attribute. */
export type PlanshipEndpoint =
  | 'token'
  | 'entitlements'
  | 'lever_usage'
  | 'metering_id_usage'
  | 'report_usage'
  | 'customer'
  | 'subscriptions'
  | 'product'
  | 'lever'
  | 'other'

interface Route {
  endpoint: PlanshipEndpoint
  method: string
  pattern: RegExp
  /** OTel `url.template`: the path with its ids replaced by placeholders. */
  template: string
}

const CUSTOMER = '/api/v1/customers/{customer_id}'
const PRODUCT = `${CUSTOMER}/products/{product_slug}`

/**
 * Matched on the URL's path end, so a base URL with a path prefix (a proxy) still matches. Path
 * parameters are URL-encoded by the client, so `[^/]+` is exactly one parameter.
 */
const ROUTES: readonly Route[] = [
  { endpoint: 'token', method: 'POST', pattern: /\/api\/v1\/auth\/token$/, template: '/api/v1/auth/token' },
  {
    endpoint: 'entitlements',
    method: 'GET',
    pattern: /\/api\/v1\/customers\/[^/]+\/products\/[^/]+\/entitlements$/,
    template: `${PRODUCT}/entitlements`,
  },
  {
    endpoint: 'lever_usage',
    method: 'GET',
    pattern: /\/api\/v1\/customers\/[^/]+\/products\/[^/]+\/levers\/[^/]+\/usage$/,
    template: `${PRODUCT}/levers/{lever_slug}/usage`,
  },
  {
    endpoint: 'metering_id_usage',
    method: 'GET',
    pattern: /\/api\/v1\/customers\/[^/]+\/products\/[^/]+\/usage\/[^/]+$/,
    template: `${PRODUCT}/usage/{metering_id}`,
  },
  {
    endpoint: 'report_usage',
    method: 'POST',
    pattern: /\/api\/v1\/customers\/[^/]+\/products\/[^/]+\/usage\/[^/]+$/,
    template: `${PRODUCT}/usage/{metering_id}`,
  },
  { endpoint: 'customer', method: 'GET', pattern: /\/api\/v1\/customers\/[^/]+$/, template: CUSTOMER },
  {
    endpoint: 'subscriptions',
    method: 'GET',
    pattern: /\/api\/v1\/customers\/[^/]+\/subscriptions$/,
    template: `${CUSTOMER}/subscriptions`,
  },
  {
    endpoint: 'product',
    method: 'GET',
    pattern: /\/api\/v1\/products\/[^/]+$/,
    template: '/api/v1/products/{product_slug}',
  },
  {
    endpoint: 'lever',
    method: 'GET',
    pattern: /\/api\/v1\/products\/[^/]+\/levers\/[^/]+$/,
    template: '/api/v1/products/{product_slug}/levers/{lever_slug}',
  },
]

/** What one Planship call looked like, for the span and the histogram. */
type CallAttributes = OtelApi.Attributes & {
  'http.request.method': string
  'server.address': string
  'server.port': number
  'url.template'?: string
  'planship_meter.endpoint': PlanshipEndpoint
}

/**
 * Instruments Planship calls after the OTel HTTP client semantic conventions: a CLIENT span
 * named `{method} {url.template}` and `http.client.request.duration` in seconds. Never the URL
 * itself: its path holds customer ids, and no header (the token) is ever read.
 */
export function clientInstrumentation(
  api: typeof OtelApi,
  tracer: OtelApi.Tracer,
  duration: OtelApi.Histogram,
): ClientInstrumentation {
  async function observe<T extends { status: number }>(method: string, url: string, send: () => Promise<T>) {
    const attributes = describeCall(method, url)
    const name = attributes['url.template'] === undefined ? method : `${method} ${attributes['url.template']}`
    const span = tracer.startSpan(name, { kind: api.SpanKind.CLIENT, attributes })
    const startedAt = performance.now()
    let status: number | undefined
    let failed: string | undefined
    try {
      // Active while sending, so spans of an instrumented fetch or node:http become its children.
      const response = await api.context.with(api.trace.setSpan(api.context.active(), span), send)
      status = response.status
      // The semantic conventions count every 4xx and 5xx of a client call as an error.
      if (status >= 400) failed = String(status)
      return response
    } catch (error) {
      failed = errorType(error)
      throw error
    } finally {
      const final: OtelApi.Attributes = { ...attributes }
      if (status !== undefined) final['http.response.status_code'] = status
      if (failed !== undefined) {
        final['error.type'] = failed
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: failed })
      }
      span.setAttributes(final)
      span.end()
      duration.record((performance.now() - startedAt) / 1000, final)
    }
  }

  return {
    transport: (transport, baseUrl) => ({
      send: (request) => observe(request.method, baseUrl + request.path, () => transport.send(request)),
      close: () => transport.close(),
    }),
    fetch: (fetchImpl) => (input, init) => {
      const url = input instanceof Request ? input.url : String(input)
      const method = init?.method ?? (input instanceof Request ? input.method : 'GET')
      return observe(method.toUpperCase(), url, () => fetchImpl(input, init))
    },
  }
}

/** The attributes of a call to `url`: its host and route template, never its path. */
function describeCall(method: string, url: string): CallAttributes {
  const target = new URL(url)
  const route = ROUTES.find((candidate) => candidate.method === method && candidate.pattern.test(target.pathname))
  const attributes: CallAttributes = {
    'http.request.method': method,
    'server.address': target.hostname,
    'server.port': Number(target.port || (target.protocol === 'https:' ? 443 : 80)),
    'planship_meter.endpoint': route?.endpoint ?? 'other',
  }
  if (route !== undefined) attributes['url.template'] = route.template
  return attributes
}

/** A low-cardinality name for a call that got no answer. */
function errorType(error: unknown): string {
  if (!(error instanceof Error)) return '_OTHER'
  if (error.name === 'TimeoutError' || error.name === 'AbortError') return 'timeout'
  // Node's network errors carry an errno code (ECONNREFUSED, ECONNRESET …); fetch nests it in `cause`.
  return errnoOf(error) ?? error.name
}
