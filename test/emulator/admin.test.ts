import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { startEmulator, type Emulator } from '../../src/emulator/index.js'
import { getToken, raw, sdk, useEmulator } from './support.js'

describe('emulator request counters and admin routes', () => {
  let emu!: Emulator
  useEmulator((started) => (emu = started))

  it('counts every request per route, failures included', async () => {
    const planship = sdk(emu)
    await planship.getEntitlements('free-customer')
    await planship.reportUsage('free-customer', 'api-call', 1)
    await planship.reportUsage('free-customer', 'api-call', 1)
    await assert.rejects(planship.getCustomer('nobody'))
    await raw(emu, 'GET', '/api/v1/health')
    await raw(emu, 'GET', '/api/v1/products/acme-api/plans', { token: 'stale' })
    assert.deepEqual(emu.requestCounts(), {
      token: 1,
      entitlements: 1,
      reportUsage: 2,
      getCustomer: 1,
      health: 1,
      listPlans: 1,
    })
    // A copy: changing it does not change the emulator's counters.
    emu.requestCounts().token = 99
    assert.equal(emu.requestCounts().token, 1)
    emu.resetRequestCounts()
    assert.deepEqual(emu.requestCounts(), {})
  })

  it('serves counters, recorded usage and records over HTTP without auth', async () => {
    const planship = sdk(emu)
    await planship.reportUsage('free-customer', 'api-call', 4)
    await planship.reportUsage('free-customer', 'api-call', 2, 'b')
    await planship.reportUsage('pro-customer', 'render', 1)

    const counters = await raw(emu, 'GET', '/_emulator/requests')
    assert.deepEqual(counters.body, { token: 1, reportUsage: 3 })
    const usage = async (query: string) => (await raw(emu, 'GET', `/_emulator/usage${query}`)).body
    assert.deepEqual(await usage(''), { usage: 7 })
    assert.deepEqual(await usage('?customer_id=free-customer'), { usage: 6 })
    assert.deepEqual(await usage('?customer_id=free-customer&metering_id=api-call&bucket=null'), { usage: 4 })
    assert.deepEqual(await usage('?metering_id=api-call&bucket=b'), { usage: 2 })
    assert.deepEqual(await usage('?customer_id=nobody'), { usage: 0 })
    const records = (await raw(emu, 'GET', '/_emulator/records')).body as unknown[]
    assert.deepEqual(records, emu.meteringRecords())
    assert.equal(records.length, 3)
  })

  it('resets, revokes tokens and advances the clock over HTTP', async () => {
    const planship = sdk(emu)
    await planship.createCustomer({ alternativeId: 'temporary' })
    await planship.reportUsage('free-customer', 'render', 5)
    assert.equal((await planship.getEntitlements('free-customer'))['renders-per-minute'], 0)

    const clock = await raw(emu, 'POST', '/_emulator/clock', { body: { advance_ms: 61_000 } })
    assert.equal(clock.status, 200)
    assert.equal((await planship.getEntitlements('free-customer'))['renders-per-minute'], 5)
    assert.equal((await raw(emu, 'POST', '/_emulator/clock', { body: { advance_ms: -1 } })).status, 422)
    assert.equal((await raw(emu, 'POST', '/_emulator/clock', { rawBody: 'nope' })).status, 422)

    const token = await getToken(emu)
    assert.equal((await raw(emu, 'POST', '/_emulator/revoke-tokens')).status, 200)
    assert.equal((await raw(emu, 'GET', '/api/v1/products/acme-api', { token })).status, 401)

    assert.equal((await raw(emu, 'POST', '/_emulator/reset')).status, 200)
    assert.deepEqual((await raw(emu, 'GET', '/_emulator/requests')).body, {})
    assert.equal(emu.recordedUsage(), 0)
    assert.deepEqual(emu.meteringRecords(), [])
    await assert.rejects(planship.getCustomer('temporary'), (error: { response?: Response }) => {
      return error.response?.status === 404
    })
    assert.equal((await planship.getCustomer('free-customer')).alternativeId, 'free-customer')
  })

  it('changes aggregation lag and latency over HTTP', async () => {
    const settings = await raw(emu, 'POST', '/_emulator/settings', { body: { aggregation_lag_ms: 60_000 } })
    assert.equal(settings.status, 200)
    const planship = sdk(emu)
    await planship.reportUsage('free-customer', 'api-call', 10)
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 100)
    assert.equal((await raw(emu, 'POST', '/_emulator/settings', { body: { latency_ms: 'x' } })).status, 422)
    // reset() also restores the settings the emulator started with.
    emu.reset()
    await planship.reportUsage('free-customer', 'api-call', 10)
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 90)
  })

  it('refuses unknown or misspelled keys in admin bodies with a 422 naming the key, changing nothing', async () => {
    const cases: Array<[string, string, unknown, string]> = [
      ['POST', '/_emulator/settings', { latency: 5 }, 'latency'],
      ['POST', '/_emulator/settings', { latency_ms: 5, aggregationLagMs: 1 }, 'aggregationLagMs'],
      ['POST', '/_emulator/clock', { advanceMs: 5 }, 'advanceMs'],
      ['POST', '/_emulator/reset', { hard: true }, 'hard'],
      ['POST', '/_emulator/revoke-tokens', { all: true }, 'all'],
      ['PUT', '/_emulator/faults', { downn: true }, 'downn'],
    ]
    const before = emu.now()
    for (const [method, path, body, key] of cases) {
      const response = await raw(emu, method, path, { body })
      assert.equal(response.status, 422, `${method} ${path} ${JSON.stringify(body)}`)
      const [issue] = (response.body as { detail: Array<{ loc: unknown[]; msg: string; type: string }> }).detail
      assert.deepEqual(issue?.loc, ['body', key])
      assert.equal(issue?.type, 'value_error.extra')
      assert.match(issue?.msg ?? '', /not permitted|not a setting/)
    }
    // A rejected body changes nothing: no latency was set, the clock did not move.
    assert.equal((await raw(emu, 'POST', '/_emulator/clock', { body: {} })).status, 422)
    assert.ok(emu.now() - before < 5_000)
    const state = await raw(emu, 'GET', '/_emulator/state')
    assert.equal((state.body as { settings: { latency_ms: number } }).settings.latency_ms, 0, 'no latency was set')
  })

  it('delays API answers by the latency, but not admin routes', async () => {
    const token = await getToken(emu)
    emu.setLatency(150)
    const started = performance.now()
    assert.equal((await raw(emu, 'GET', '/api/v1/health')).status, 200)
    assert.ok(performance.now() - started >= 145, 'the API answer came before the latency')

    // With a minute of latency, an admin call can only finish in time if it is not delayed.
    emu.setLatency(60_000)
    const counters = await fetch(`${emu.url}/_emulator/requests`, { signal: AbortSignal.timeout(5_000) })
    assert.equal(counters.status, 200)
    emu.setLatency(0)
    assert.equal((await raw(emu, 'GET', '/api/v1/products/acme-api', { token })).status, 200)
  })

  it('validates the setters', () => {
    assert.throws(() => emu.setLatency(-1), TypeError)
    assert.throws(() => emu.setAggregationLag(Number.NaN), TypeError)
    assert.throws(() => emu.advanceClock(-5), TypeError)
  })
})

describe('emulator lifecycle', () => {
  it('closes idempotently, dropping keep-alive connections', async () => {
    const emu = await startEmulator({ latencyMs: 0 })
    assert.match(emu.url, /^http:\/\/127\.0\.0\.1:\d+$/)
    await sdk(emu).getEntitlements('free-customer')
    await emu.close()
    await emu.close()
    assert.equal(emu.server.listening, false)
    await assert.rejects(fetch(`${emu.url}/api/v1/health`))
  })

  it('rejects invalid options with a TypeError naming the option', async () => {
    await assert.rejects(startEmulator({ port: -1 }), /port/)
    await assert.rejects(startEmulator({ latencyMs: -5 }), /latencyMs/)
    await assert.rejects(startEmulator({ tokenTtlSeconds: 0 }), /tokenTtlSeconds/)
    await assert.rejects(startEmulator({ aggregationLagMs: Number.POSITIVE_INFINITY }), /aggregationLagMs/)
  })

  it('fails to start on a port in use', async () => {
    const first = await startEmulator()
    try {
      const port = Number(new URL(first.url).port)
      await assert.rejects(startEmulator({ port }), /EADDRINUSE/)
    } finally {
      await first.close()
    }
  })
})
