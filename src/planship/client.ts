import { failedBeforeSending, networkFailure, PlanshipMeterError } from '../errors.js'
import type { Clock } from '../types.js'
import type { ClientInstrumentation } from '../telemetry/client-hook.js'
import { pathSegmentProblem } from './ids.js'
import { TokenSource } from './token.js'
import {
  fetchTransport,
  poolTransport,
  ResponseTooLargeError,
  type Transport,
  type TransportResponse,
} from './transport.js'
import type {
  Customer,
  CustomerSubscription,
  Entitlements,
  Lever,
  LeverInList,
  LeverUsage,
  MeteringRecord,
  Product,
} from './types.js'

export interface PlanshipClientConfig {
  baseUrl: string
  productSlug: string
  clientId: string
  clientSecret: string
  clientAuth: 'basic-raw' | 'basic-encoded'
  timeoutMs: number
  /** Most bytes of an answer's body read; a larger answer is an error. */
  maxResponseBytes: number
  /** A user-supplied fetch; undici's keep-alive pool when absent. */
  fetch: typeof fetch | undefined
  /** Most connections to Planship at once (default transport). */
  maxSockets: number
  clock: Clock
  /** Spans and durations around every HTTP call (OpenTelemetry); none when absent. */
  instrument?: ClientInstrumentation | undefined
}

/** Upstream calls made, by kind, for tests, metrics and the benchmark. */
export interface PlanshipCallCounts {
  token: number
  entitlements: number
  leverUsage: number
  meteringIdUsage: number
  reportUsage: number
  getCustomer: number
  getProduct: number
  getLever: number
  listSubscriptions: number
  listLevers: number
}

type Validator<T> = (body: unknown) => body is T

const enc = encodeURIComponent

/**
 * The few Planship API calls a meter needs, over `fetch` with a per-call timeout, a cached
 * OAuth2 token renewed once on a 401, URL-encoded path parameters and typed errors.
 */
export class PlanshipClient {
  readonly #config: PlanshipClientConfig
  readonly #tokens: TokenSource
  readonly #transport: Transport
  #headersFor: { token: string; read: Record<string, string>; write: Record<string, string> } | undefined
  readonly #counts: Omit<PlanshipCallCounts, 'token'> = {
    entitlements: 0,
    leverUsage: 0,
    meteringIdUsage: 0,
    reportUsage: 0,
    getCustomer: 0,
    getProduct: 0,
    getLever: 0,
    listSubscriptions: 0,
    listLevers: 0,
  }
  /** The product's metering ids and the levers each feeds, read once when first asked for. */
  #meteringIds: Promise<Map<string, string[]>> | undefined

  constructor(config: PlanshipClientConfig) {
    // Paths are appended to the base URL, which users write with or without a trailing slash.
    this.#config = { ...config, baseUrl: config.baseUrl.replace(/\/+$/, '') }
    const tokenFetch = config.fetch ?? globalThis.fetch
    this.#tokens = new TokenSource({ ...this.#config, fetch: config.instrument?.fetch(tokenFetch) ?? tokenFetch })
    const { baseUrl } = this.#config
    const transport =
      config.fetch === undefined ? poolTransport(baseUrl, config.maxSockets) : fetchTransport(baseUrl, config.fetch)
    this.#transport = config.instrument?.transport(transport, baseUrl) ?? transport
  }

  callCounts(): PlanshipCallCounts {
    return { token: this.#tokens.requests, ...this.#counts }
  }

  /**
   * The customer's path under the product. An id that cannot be exactly one path segment (a dot
   * segment, a lone surrogate …) is refused here, before anything is sent: it must never reach
   * another resource, and its failure is not an answer from Planship.
   */
  #productPath(customerId: string): string {
    const problem = pathSegmentProblem(customerId)
    if (problem !== undefined) {
      throw failedBeforeSending(
        new PlanshipMeterError('INVALID_CUSTOMER_ID', `the customer id ${problem}; nothing was sent to Planship`),
      )
    }
    return `/api/v1/customers/${enc(customerId)}/products/${enc(this.#config.productSlug)}`
  }

  async getEntitlements(customerId: string): Promise<Entitlements> {
    this.#counts.entitlements++
    return this.#call('GET', `${this.#productPath(customerId)}/entitlements`, undefined, isObject<Entitlements>)
  }

  async getLeverUsage(customerId: string, leverSlug: string): Promise<LeverUsage> {
    this.#counts.leverUsage++
    return this.#call('GET', `${this.#productPath(customerId)}/levers/${enc(leverSlug)}/usage`, undefined, isLeverUsage)
  }

  /** Usage of every lever fed by `meteringId`, keyed by lever slug (`{}` when none is). */
  async getMeteringIdUsage(customerId: string, meteringId: string): Promise<Record<string, LeverUsage>> {
    this.#counts.meteringIdUsage++
    return this.#call('GET', `${this.#productPath(customerId)}/usage/${enc(meteringId)}`, undefined, isUsageByLever)
  }

  async reportUsage(customerId: string, meteringId: string, usage: number, bucket?: string): Promise<MeteringRecord> {
    this.#counts.reportUsage++
    const body = bucket === undefined ? { usage } : { usage, bucket }
    return this.#call('POST', `${this.#productPath(customerId)}/usage/${enc(meteringId)}`, body, isMeteringRecord)
  }

  async getCustomer(customerId: string): Promise<Customer> {
    this.#counts.getCustomer++
    this.#productPath(customerId) // validates the id
    return this.#call('GET', `/api/v1/customers/${enc(customerId)}`, undefined, isCustomer)
  }

  /** The product itself: proves the credentials work and the slug names a product they can see. */
  async getProduct(): Promise<Product> {
    this.#counts.getProduct++
    return this.#call('GET', `/api/v1/products/${enc(this.#config.productSlug)}`, undefined, isProduct)
  }

  /** One lever of the product, with its configuration (the aggregation period of a metered lever). */
  async getLever(leverSlug: string): Promise<Lever> {
    this.#counts.getLever++
    const path = `/api/v1/products/${enc(this.#config.productSlug)}/levers/${enc(leverSlug)}`
    return this.#call('GET', path, undefined, isLever)
  }

  /** The product's levers (slugs and names; no metering ids: those are in {@link getLever}). */
  async listLevers(): Promise<LeverInList[]> {
    this.#counts.listLevers++
    return this.#call('GET', `/api/v1/products/${enc(this.#config.productSlug)}/levers`, undefined, isLeverList)
  }

  /**
   * Every metering id of the product → the levers it feeds: the lever list, then each lever.
   * Read once and kept (a failed read is tried again next time); for messages about metering
   * ids, never on a request's path.
   */
  meteringIds(): Promise<Map<string, string[]>> {
    this.#meteringIds ??= this.#readMeteringIds().catch((error: unknown) => {
      this.#meteringIds = undefined
      throw error
    })
    return this.#meteringIds
  }

  async #readMeteringIds(): Promise<Map<string, string[]>> {
    const levers = await Promise.all((await this.listLevers()).map((lever) => this.getLever(lever.slug)))
    const byId = new Map<string, string[]>()
    for (const lever of levers) {
      for (const id of lever.metering_ids ?? []) byId.set(id, [...(byId.get(id) ?? []), lever.slug])
    }
    return byId
  }

  /** The customer's subscriptions to the product (their renewal times). */
  async listSubscriptions(customerId: string): Promise<CustomerSubscription[]> {
    this.#counts.listSubscriptions++
    this.#productPath(customerId) // validates the id
    const path = `/api/v1/customers/${enc(customerId)}/subscriptions?product_slug=${enc(this.#config.productSlug)}`
    return this.#call('GET', path, undefined, isSubscriptionList)
  }

  async #call<T>(method: string, path: string, body: unknown, valid: Validator<T>): Promise<T> {
    let token = await this.#token()
    let response = await this.#send(method, path, body, token)
    if (response.status === 401) {
      // Tokens can be revoked before they expire: renew once, then let a second 401 surface.
      this.#tokens.invalidate(token)
      token = await this.#token()
      response = await this.#send(method, path, body, token)
    }
    const parsed = parseJson(response.text)
    if (response.status < 200 || response.status > 299) {
      const detail = typeof parsed === 'object' && parsed !== null && 'detail' in parsed ? parsed.detail : undefined
      if (response.status === 404 && typeof detail === 'string' && /^product not found/i.test(detail)) {
        throw new PlanshipMeterError(
          'PLANSHIP_PRODUCT_NOT_FOUND',
          `Planship at ${this.#config.baseUrl} does not know the product ${JSON.stringify(this.#config.productSlug)} ` +
            `(client id ${JSON.stringify(this.#config.clientId)}): check the productSlug option, and that the ` +
            `credentials belong to the organization that has the product`,
          { status: 404, detail },
        )
      }
      throw new PlanshipMeterError(
        'PLANSHIP_HTTP_ERROR',
        `Planship answered ${method} ${path} with HTTP ${response.status}` +
          (typeof detail === 'string' ? `: ${detail.slice(0, 200)}` : ''),
        { status: response.status, detail, retryAfterMs: parseRetryAfter(response.retryAfter, Date.now()) },
      )
    }
    if (!valid(parsed)) {
      throw new PlanshipMeterError(
        'PLANSHIP_BAD_RESPONSE',
        `Planship answered ${method} ${path} with a body that is not the documented JSON`,
        { status: response.status },
      )
    }
    return parsed
  }

  /** A token; a failure to get one means the call itself was never sent. */
  #token(): Promise<string> {
    return this.#tokens.get().catch((error: unknown) => Promise.reject(failedBeforeSending(error)))
  }

  async #send(method: string, path: string, body: unknown, token: string): Promise<TransportResponse> {
    try {
      return await this.#transport.send({
        method,
        path,
        headers: this.#headers(token, body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        timeoutMs: this.#config.timeoutMs,
        maxResponseBytes: this.#config.maxResponseBytes,
      })
    } catch (error) {
      throw transportError(error, method, path, this.#config.baseUrl)
    }
  }

  /** Request headers, built once per token rather than once per call. */
  #headers(token: string, withBody: boolean): Record<string, string> {
    if (this.#headersFor?.token !== token) {
      const read = { authorization: `Bearer ${token}`, accept: 'application/json' }
      this.#headersFor = { token, read, write: { ...read, 'content-type': 'application/json' } }
    }
    return withBody ? this.#headersFor.write : this.#headersFor.read
  }

  /** Frees pooled connections; later calls open new ones. */
  close(): void {
    this.#transport.close()
  }
}

function transportError(error: unknown, method: string, path: string, baseUrl: string): PlanshipMeterError {
  if (error instanceof ResponseTooLargeError) {
    return new PlanshipMeterError(
      'PLANSHIP_BAD_RESPONSE',
      `Planship answered ${method} ${path} with ${error.message} (planship.maxResponseBytes)`,
      { status: error.status, cause: error },
    )
  }
  const name = error instanceof Error ? error.name : undefined
  const code = (error as { code?: unknown } | null)?.code
  const timedOut =
    name === 'TimeoutError' ||
    name === 'AbortError' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT'
  return timedOut
    ? new PlanshipMeterError('PLANSHIP_TIMEOUT', `Planship did not answer ${method} ${path} in time`, { cause: error })
    : new PlanshipMeterError(
        'PLANSHIP_UNREACHABLE',
        `Planship is unreachable (${networkFailure(error, baseUrl)}) for ${method} ${path}`,
        { cause: error },
      )
}

/** `Retry-After` as delay-seconds or an HTTP date, in ms from `now`. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined || value.trim() === '') return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function isObject<T>(body: unknown): body is T {
  return typeof body === 'object' && body !== null && !Array.isArray(body)
}

function isUnitCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
}

function isLeverUsage(body: unknown): body is LeverUsage {
  return (
    isObject<LeverUsage>(body) &&
    isUnitCount(body.total) &&
    isObject<Record<string, unknown>>(body.by_bucket) &&
    Object.values(body.by_bucket).every(isUnitCount)
  )
}

function isUsageByLever(body: unknown): body is Record<string, LeverUsage> {
  return isObject<Record<string, unknown>>(body) && Object.values(body).every(isLeverUsage)
}

function isMeteringRecord(body: unknown): body is MeteringRecord {
  return isObject<MeteringRecord>(body) && typeof body.usage === 'number'
}

function isProduct(body: unknown): body is Product {
  return isObject<Product>(body) && typeof body.slug === 'string'
}

function isCustomer(body: unknown): body is Customer {
  return isObject<Customer>(body) && typeof body.id === 'string'
}

function isLever(body: unknown): body is Lever {
  return isObject<Lever>(body) && typeof body.slug === 'string'
}

function isLeverList(body: unknown): body is LeverInList[] {
  return Array.isArray(body) && body.every((item) => isObject<LeverInList>(item) && typeof item.slug === 'string')
}

function isSubscriptionList(body: unknown): body is CustomerSubscription[] {
  return Array.isArray(body) && body.every((item) => isObject<CustomerSubscription>(item))
}
