import { randomBytes } from 'node:crypto'
import type { FixtureCredentials } from './fixture.js'

/** Issued access tokens; opaque random strings valid until their expiry or a revocation. */
export class TokenStore {
  private readonly tokens = new Map<string, number>()

  constructor(
    private readonly credentials: readonly FixtureCredentials[],
    private readonly now: () => number,
    private readonly ttlSeconds: number,
  ) {}

  /**
   * Whether an `Authorization: Basic …` header carries known credentials. Both encodings in use are
   * accepted: Planship's SDK sends `base64(id:secret)` raw, while RFC 6749 §2.3.1 clients such as
   * openid-client form-urlencode id and secret first, so a secret containing `+ / : %` differs.
   */
  checkBasic(header: string | undefined): boolean {
    if (header === undefined) return false
    const match = /^Basic\s+(\S+)\s*$/i.exec(header)
    if (match === null) return false
    const decoded = Buffer.from(match[1] ?? '', 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon < 0) return false
    const rawId = decoded.slice(0, colon)
    const rawSecret = decoded.slice(colon + 1)
    const candidates: Array<[string, string]> = [[rawId, rawSecret]]
    const formDecoded = [formDecode(rawId), formDecode(rawSecret)] as const
    if (formDecoded[0] !== undefined && formDecoded[1] !== undefined) candidates.push([formDecoded[0], formDecoded[1]])
    return candidates.some(([id, secret]) =>
      this.credentials.some((c) => c.clientId === id && c.clientSecret === secret),
    )
  }

  issue(): { accessToken: string; expiresIn: number } {
    this.prune()
    const accessToken = randomBytes(24).toString('base64url')
    this.tokens.set(accessToken, this.now() + this.ttlSeconds * 1000)
    return { accessToken, expiresIn: this.ttlSeconds }
  }

  /** Whether `Authorization: Bearer <token>` names a live token. */
  checkBearer(header: string | undefined): boolean {
    if (header === undefined) return false
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (match === null) return false
    const expiresAt = this.tokens.get(match[1] ?? '')
    return expiresAt !== undefined && this.now() < expiresAt
  }

  revokeAll(): void {
    this.tokens.clear()
  }

  /** Drops expired tokens so that token bursts over a long run do not grow the map forever. */
  private prune(): void {
    if (this.tokens.size < 1024) return
    const now = this.now()
    for (const [token, expiresAt] of this.tokens) if (expiresAt <= now) this.tokens.delete(token)
  }
}

function formDecode(value: string): string | undefined {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '))
  } catch {
    return undefined
  }
}
