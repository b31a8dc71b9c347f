import assert from 'node:assert/strict'
import { startEmulator, type Emulator } from '../../src/emulator/index.js'
import { PlanshipMeterError } from '../../src/index.js'
import { PlanshipClient, type PlanshipClientConfig } from '../../src/planship/client.js'

describe('PlanshipClient', () => {
  let emu: Emulator
  let config: PlanshipClientConfig

  beforeEach(async () => {
    emu = await startEmulator()
    config = {
      baseUrl: emu.url,
      productSlug: emu.productSlug,
      clientId: emu.clientId,
      clientSecret: emu.clientSecret,
      clientAuth: 'basic-raw',
      timeoutMs: 2_000,
      maxResponseBytes: 1_048_576,
      fetch: undefined,
      maxSockets: 8,
      clock: Date,
    }
  })
  afterEach(() => emu.close())

  it('reads entitlements, lever usage, metering-id usage and customers, and reports usage', async () => {
    const client = new PlanshipClient(config)
    const entitlements = await client.getEntitlements('free-customer')
    assert.deepEqual(
      { calls: entitlements['api-calls'], csv: entitlements['csv-export'], projects: entitlements['max-projects'] },
      { calls: 100, csv: false, projects: 3 },
    )
    const record = await client.reportUsage('free-customer', 'api-call', 7, 'proj A')
    assert.equal(record.usage, 7)
    assert.equal(record.bucket, 'proj A')
    assert.equal((await client.getLeverUsage('free-customer', 'api-calls')).total, 7)
    const byLever = await client.getMeteringIdUsage('free-customer', 'api-call')
    assert.deepEqual(Object.keys(byLever), ['api-calls'])
    // api-calls sums all buckets (formula "total"), so its by_bucket mirrors the total under "null".
    assert.deepEqual(byLever['api-calls']?.by_bucket, { null: 7 })
    assert.equal((await client.getEntitlements('free-customer'))['api-calls'], 93)
    const customer = await client.getCustomer('free-customer')
    assert.equal(customer.alternative_id, 'free-customer')
  })

  it('shares one token among many concurrent calls', async () => {
    const client = new PlanshipClient(config)
    await Promise.all(Array.from({ length: 40 }, () => client.getEntitlements('pro-customer')))
    assert.equal(emu.requestCounts()['token'], 1)
    assert.equal(emu.requestCounts()['entitlements'], 40)
  })

  it('renews a revoked token once and retries the call without failing it', async () => {
    const client = new PlanshipClient(config)
    await client.getEntitlements('pro-customer')
    emu.revokeTokens()
    await Promise.all(Array.from({ length: 10 }, () => client.getEntitlements('pro-customer')))
    assert.equal(emu.requestCounts()['token'], 2)
  })

  it('renews a token before it expires', async () => {
    await emu.close()
    emu = await startEmulator({ tokenTtlSeconds: 1 })
    const client = new PlanshipClient({ ...config, baseUrl: emu.url })
    await client.getEntitlements('pro-customer')
    await new Promise((resolve) => setTimeout(resolve, 600)) // half the life of a 1 s token
    await client.getEntitlements('pro-customer')
    assert.equal(emu.requestCounts()['token'], 2)
    assert.equal(emu.requestCounts()['entitlements'], 2, 'no call was refused with a 401')
  })

  it('works with URL-encoded Basic credentials too, and with a trailing slash on the base URL', async () => {
    const client = new PlanshipClient({ ...config, clientAuth: 'basic-encoded', baseUrl: `${emu.url}/` })
    assert.equal((await client.getEntitlements('pro-customer'))['csv-export'], true)
  })

  it('fails with PLANSHIP_AUTH_FAILED on bad credentials, never showing the secret', async () => {
    const secret = 'wrong-secret-do-not-print'
    const client = new PlanshipClient({ ...config, clientSecret: secret })
    const error = await client.getEntitlements('pro-customer').catch((e: unknown) => e)
    assert.ok(error instanceof PlanshipMeterError)
    assert.equal(error.code, 'PLANSHIP_AUTH_FAILED')
    assert.equal(error.status, 401)
    assert.doesNotMatch(
      JSON.stringify({ message: error.message, stack: error.stack, detail: error.detail }),
      new RegExp(secret),
    )
  })

  it("carries the status and Planship's detail on HTTP errors (404 unknown customer, 422 bad usage)", async () => {
    const client = new PlanshipClient(config)
    const notFound = await client.getEntitlements('nobody@example.com').catch((e: unknown) => e)
    assert.ok(notFound instanceof PlanshipMeterError)
    assert.equal(notFound.code, 'PLANSHIP_HTTP_ERROR')
    assert.equal(notFound.status, 404)
    assert.equal(typeof notFound.detail, 'string')
    const invalid = await client.reportUsage('free-customer', 'api-call', 1.5).catch((e: unknown) => e)
    assert.ok(invalid instanceof PlanshipMeterError)
    assert.equal(invalid.status, 422)
    assert.ok(Array.isArray(invalid.detail))
  })

  it('times out slow answers with PLANSHIP_TIMEOUT', async () => {
    emu.setLatency(500)
    const client = new PlanshipClient({ ...config, timeoutMs: 100 })
    const error = await client.getEntitlements('pro-customer').catch((e: unknown) => e)
    assert.ok(error instanceof PlanshipMeterError)
    assert.equal(error.code, 'PLANSHIP_TIMEOUT')
  })

  it('reports PLANSHIP_UNREACHABLE when nothing listens, and PLANSHIP_BAD_RESPONSE for garbage', async () => {
    const url = emu.url
    await emu.close()
    const down = await new PlanshipClient({ ...config, baseUrl: url }).getEntitlements('x').catch((e: unknown) => e)
    assert.ok(down instanceof PlanshipMeterError)
    assert.equal(down.code, 'PLANSHIP_UNREACHABLE')

    const garbage: typeof fetch = async (input) =>
      String(input).endsWith('/auth/token')
        ? Response.json({ access_token: 't', token_type: 'bearer', expires_in: 3600 })
        : new Response('<html>oops</html>', { status: 200 })
    const bad = await new PlanshipClient({ ...config, fetch: garbage }).getEntitlements('x').catch((e: unknown) => e)
    assert.ok(bad instanceof PlanshipMeterError)
    assert.equal(bad.code, 'PLANSHIP_BAD_RESPONSE')
    emu = await startEmulator() // afterEach closes it
  })
})
