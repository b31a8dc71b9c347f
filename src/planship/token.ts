import * as oidc from 'openid-client'
import { networkFailure, PlanshipMeterError } from '../errors.js'
import type { Clock } from '../types.js'

export interface TokenSourceConfig {
  baseUrl: string
  clientId: string
  clientSecret: string
  clientAuth: 'basic-raw' | 'basic-encoded'
  timeoutMs: number
  fetch: typeof fetch
  clock: Clock
}

interface CachedToken {
  accessToken: string
  /** Clock time after which the token is renewed before use; Infinity when Planship gave no expiry. */
  renewAt: number
}

/** Renew this long before `expires_in` runs out, so a token never expires in flight. */
const EXPIRY_MARGIN_MS = 30_000

/**
 * OAuth2 client-credentials tokens for the Planship API: fetched with openid-client, cached
 * until shortly before they expire, one token request at a time however many calls wait.
 */
export class TokenSource {
  readonly #config: oidc.Configuration
  readonly #clock: Clock
  readonly #baseUrl: string
  readonly #clientId: string
  #cached: CachedToken | undefined
  #inflight: Promise<CachedToken> | undefined
  /** Token requests sent, for tests and metrics. */
  requests = 0

  constructor(config: TokenSourceConfig) {
    this.#clock = config.clock
    this.#baseUrl = config.baseUrl
    this.#clientId = config.clientId
    this.#config = new oidc.Configuration(
      { issuer: config.baseUrl, token_endpoint: `${config.baseUrl}/api/v1/auth/token` },
      config.clientId,
      undefined,
      config.clientAuth === 'basic-raw'
        ? rawBasic(config.clientId, config.clientSecret)
        : oidc.ClientSecretBasic(config.clientSecret),
    )
    if (config.baseUrl.startsWith('http:')) oidc.allowInsecureRequests(this.#config)
    const fetchImpl = config.fetch
    const timeoutMs = config.timeoutMs
    this.#config[oidc.customFetch] = (url, init) => {
      const timeout = AbortSignal.timeout(timeoutMs)
      return fetchImpl(url, { ...init, signal: init.signal ? AbortSignal.any([init.signal, timeout]) : timeout })
    }
  }

  /** A valid access token, from the cache when it has one. */
  async get(): Promise<string> {
    const cached = this.#cached
    if (cached !== undefined && this.#clock.now() < cached.renewAt) return cached.accessToken
    this.#inflight ??= this.#request().finally(() => {
      this.#inflight = undefined
    })
    return (await this.#inflight).accessToken
  }

  /** Forgets `token` after Planship refused it, unless a newer one already replaced it. */
  invalidate(token: string): void {
    if (this.#cached?.accessToken === token) this.#cached = undefined
  }

  async #request(): Promise<CachedToken> {
    this.requests++
    const startedAt = this.#clock.now()
    let response: Awaited<ReturnType<typeof oidc.clientCredentialsGrant>>
    try {
      response = await oidc.clientCredentialsGrant(this.#config)
    } catch (error) {
      throw tokenError(error, this.#baseUrl, this.#clientId)
    }
    const expiresInS = response.expiresIn()
    const lifetimeMs = expiresInS === undefined ? Infinity : expiresInS * 1000
    const token = {
      accessToken: response.access_token,
      // Short-lived tokens renew at half their life rather than never being used.
      renewAt: startedAt + Math.max(lifetimeMs - EXPIRY_MARGIN_MS, lifetimeMs / 2),
    }
    this.#cached = token
    return token
  }
}

/** Planship's own SDKs send `base64(id:secret)` without URL-encoding either part. */
function rawBasic(clientId: string, clientSecret: string): oidc.ClientAuth {
  const header = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`
  return (_as, _client, _body, headers) => {
    headers.set('authorization', header)
  }
}

function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined
  if ('status' in error && typeof error.status === 'number') return error.status
  if ('cause' in error && error.cause instanceof Response) return error.cause.status
  return undefined
}

/** The OAuth2 error code of a refusal (`invalid_client` …), when the answer had one. */
function oauthErrorOf(error: unknown): string | undefined {
  const code = error instanceof oidc.ResponseBodyError ? error.error : undefined
  // Only a code's characters: the rest of a body is not ours to repeat.
  return code !== undefined && /^[\w.-]{1,64}$/.test(code) ? code : undefined
}

/**
 * Maps openid-client failures to our codes. A refusal says what to check: the client id and the
 * base URL it was sent to (never the secret, which stays out of every message).
 */
function tokenError(error: unknown, baseUrl: string, clientId: string): PlanshipMeterError {
  const status = statusOf(error)
  const code = error instanceof oidc.ClientError ? error.code : undefined
  if (status === 400 || status === 401 || status === 403) {
    const oauthError = oauthErrorOf(error)
    return new PlanshipMeterError(
      'PLANSHIP_AUTH_FAILED',
      `Planship at ${baseUrl} refused the client credentials of client id ${JSON.stringify(clientId)} ` +
        `(HTTP ${status}${oauthError === undefined ? '' : ` ${oauthError}`}): check planship.clientId and ` +
        `planship.clientSecret, and that planship.baseUrl is the Planship they were issued by`,
      { status, cause: error },
    )
  }
  if (status !== undefined) {
    return new PlanshipMeterError('PLANSHIP_HTTP_ERROR', `Planship token request failed with HTTP ${status}`, {
      status,
      cause: error,
    })
  }
  if (code === 'OAUTH_TIMEOUT') {
    return new PlanshipMeterError('PLANSHIP_TIMEOUT', 'Planship token request timed out', { cause: error })
  }
  if (error instanceof TypeError) {
    return new PlanshipMeterError(
      'PLANSHIP_UNREACHABLE',
      `Planship token endpoint is unreachable (${networkFailure(error, baseUrl)})`,
      { cause: error },
    )
  }
  return new PlanshipMeterError(
    'PLANSHIP_BAD_RESPONSE',
    'Planship token response is not a valid OAuth2 token response',
    {
      cause: error,
    },
  )
}
