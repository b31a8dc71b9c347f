import assert from 'node:assert/strict'
import * as oauth from 'openid-client'
import { startEmulator, type Emulator, type Fixture } from '../../src/emulator/index.js'
import { basic, getToken, raw, sdk } from './support.js'

describe('emulator auth', () => {
  let emu: Emulator

  before(async () => {
    emu = await startEmulator({ port: 0, tokenTtlSeconds: 600 })
  })
  after(async () => {
    await emu.close()
  })
  beforeEach(() => emu.reset())

  it('issues a bearer token for Basic credentials sent without a body, like the Planship SDK', async () => {
    const response = await raw(emu, 'POST', '/api/v1/auth/token', {
      headers: { authorization: basic('demo-client-id', 'demo-client-secret') },
    })
    assert.equal(response.status, 200)
    const body = response.body as Record<string, unknown>
    assert.equal(typeof body.access_token, 'string')
    assert.ok((body.access_token as string).length >= 16)
    assert.equal(body.token_type, 'bearer')
    assert.equal(body.expires_in, 600)
  })

  it('accepts the OAuth form body grant_type=client_credentials and hands out distinct tokens', async () => {
    const request = () =>
      raw(emu, 'POST', '/api/v1/auth/token', {
        headers: {
          authorization: basic(emu.clientId, emu.clientSecret),
          'content-type': 'application/x-www-form-urlencoded',
        },
        rawBody: 'grant_type=client_credentials',
      })
    const [a, b] = await Promise.all([request(), request()])
    assert.equal(a.status, 200)
    assert.equal(b.status, 200)
    const tokenA = (a.body as { access_token: string }).access_token
    const tokenB = (b.body as { access_token: string }).access_token
    assert.notEqual(tokenA, tokenB)
    // Both stay valid: the SDK has no single-flight and may hold either.
    for (const token of [tokenA, tokenB]) {
      assert.equal((await raw(emu, 'GET', '/api/v1/products/acme-api', { token })).status, 200)
    }
  })

  it('rejects wrong or missing credentials with 401 and never echoes the secret', async () => {
    for (const headers of [
      { authorization: basic('demo-client-id', 'wrong-secret-value') },
      { authorization: basic('someone-else', 'demo-client-secret') },
      { authorization: 'Bearer whatever' },
      {} as Record<string, string>,
    ]) {
      const response = await raw(emu, 'POST', '/api/v1/auth/token', { headers })
      assert.equal(response.status, 401, JSON.stringify(headers))
      assert.equal(typeof (response.body as { detail: unknown }).detail, 'string')
      assert.ok(!response.text.includes('wrong-secret-value'))
      assert.ok(!response.text.includes('demo-client-secret'))
    }
  })

  it('requires a bearer token on every API route but health', async () => {
    const health = await raw(emu, 'GET', '/api/v1/health')
    assert.equal(health.status, 200)
    assert.deepEqual(health.body, {})

    for (const token of [undefined, 'not-a-token']) {
      const response = await raw(emu, 'GET', '/api/v1/customers/free-customer/products/acme-api/entitlements', {
        ...(token === undefined ? {} : { token }),
      })
      assert.equal(response.status, 401)
      assert.deepEqual(response.body, { detail: 'Not authenticated' })
      assert.equal(response.headers.get('www-authenticate'), 'Bearer')
    }
  })

  it('rejects revoked tokens, and the SDK recovers by fetching a new token', async () => {
    const planship = sdk(emu)
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 100)
    const token = await getToken(emu)
    emu.resetRequestCounts()

    emu.revokeTokens()
    const rejected = await raw(emu, 'GET', '/api/v1/customers/free-customer/products/acme-api/entitlements', { token })
    assert.equal(rejected.status, 401)

    // The SDK still holds its revoked token: it gets a 401, fetches a new token and retries once.
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 100)
    assert.deepEqual(emu.requestCounts(), { entitlements: 3, token: 1 })
  })

  it('expires tokens after tokenTtlSeconds of emulator time', async () => {
    const token = await getToken(emu)
    const path = '/api/v1/products/acme-api'
    emu.advanceClock(599_000)
    assert.equal((await raw(emu, 'GET', path, { token })).status, 200)
    emu.advanceClock(1_000)
    assert.equal((await raw(emu, 'GET', path, { token })).status, 401)
    assert.equal((await raw(emu, 'GET', path, { token: await getToken(emu) })).status, 200)
  })

  it('answers unknown routes with a JSON 404 and wrong methods with a JSON 405', async () => {
    const token = await getToken(emu)
    const missing = await raw(emu, 'GET', '/api/v1/nothing-here', { token })
    assert.equal(missing.status, 404)
    assert.deepEqual(missing.body, { detail: 'Not Found' })
    const wrongMethod = await raw(emu, 'PUT', '/api/v1/health')
    assert.equal(wrongMethod.status, 405)
    assert.equal(typeof (wrongMethod.body as { detail: unknown }).detail, 'string')
  })
})

describe('emulator Basic credential encodings', () => {
  // Characters that form-urlencoding changes, so the two encodings really differ.
  const clientId = 'client@acme'
  const clientSecret = 's3cr+t/:%x y'
  const fixture: Fixture = {
    credentials: [{ clientId, clientSecret }],
    products: [{ slug: 'p', levers: [{ slug: 'flag', type: 'boolean' }], plans: [{ slug: 'basic' }] }],
  }
  let emu: Emulator

  before(async () => {
    emu = await startEmulator({ fixture })
  })
  after(async () => {
    await emu.close()
  })

  const tokenStatus = async (authorization: string) =>
    (await raw(emu, 'POST', '/api/v1/auth/token', { headers: { authorization } })).status

  it('accepts raw base64(id:secret), as the Planship SDK sends it', async () => {
    assert.equal(await tokenStatus(basic(clientId, clientSecret)), 200)
  })

  it('accepts base64(urlencode(id):urlencode(secret)) as RFC 6749 clients send it', async () => {
    const formEncode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+')
    assert.equal(await tokenStatus(basic(formEncode(clientId), formEncode(clientSecret))), 200)
    assert.equal(await tokenStatus(basic(formEncode(clientId), formEncode('s3cr+t/:%x z'))), 401)
  })

  it('works with openid-client client_credentials and ClientSecretBasic', async () => {
    const config = new oauth.Configuration(
      { issuer: emu.url, token_endpoint: `${emu.url}/api/v1/auth/token` },
      clientId,
      undefined,
      oauth.ClientSecretBasic(clientSecret),
    )
    oauth.allowInsecureRequests(config)
    const tokens = await oauth.clientCredentialsGrant(config)
    assert.equal(tokens.token_type, 'bearer')
    assert.equal((await raw(emu, 'GET', '/api/v1/products/p', { token: tokens.access_token })).status, 200)
  })

  it('lets the SDK itself authenticate with such a secret', async () => {
    assert.equal(emu.clientSecret, clientSecret)
    const planship = sdk(emu, 'p')
    assert.deepEqual(await planship.getEntitlements(emu.createCustomer('someone').id), { flag: false })
  })
})
