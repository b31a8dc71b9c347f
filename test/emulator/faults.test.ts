import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { startEmulator, type Emulator, type FaultRule } from '../../src/emulator/index.js'
import { getToken, raw, sdk, statusOf } from './support.js'

type Outcome = number | 'reset' | 'timeout'

/** What a client sees: the status, a dropped connection, or nothing before `timeoutMs`. */
async function outcome(
  emu: Emulator,
  method: string,
  path: string,
  init: { token?: string; body?: unknown; timeoutMs?: number } = {},
): Promise<Outcome> {
  const headers: Record<string, string> = {}
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`
  if (init.body !== undefined) headers['content-type'] = 'application/json'
  try {
    const response = await fetch(`${emu.url}${path}`, {
      method,
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: AbortSignal.timeout(init.timeoutMs ?? 5_000),
    })
    await response.arrayBuffer()
    return response.status
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') return 'timeout'
    if (error instanceof TypeError) return 'reset'
    throw error
  }
}

const usagePath = '/api/v1/customers/free-customer/products/acme-api/usage/api-call'

/** Waits until the emulator has seen `count` requests on `route`. */
async function arrived(emu: Emulator, route: string, count: number): Promise<void> {
  while ((emu.requestCounts()[route] ?? 0) < count) await sleep(5)
}

describe('emulator fault injection', () => {
  let emu: Emulator
  let token: string

  before(async () => {
    emu = await startEmulator()
  })
  after(async () => {
    await emu.close()
  })
  beforeEach(async () => {
    emu.reset()
    token = await getToken(emu)
  })

  it('answers an error status instead of running the route, and still counts the request', async () => {
    emu.setFaults({ rules: [{ route: 'reportUsage', kind: 'error', status: 502 }] })
    const response = await raw(emu, 'POST', usagePath, { token, body: { usage: 3 } })
    assert.equal(response.status, 502)
    assert.deepEqual(response.body, { detail: 'Bad Gateway (injected fault)' })
    assert.equal(emu.recordedUsage(), 0)
    // Other routes are untouched; the SDK sees the default 503.
    assert.equal((await raw(emu, 'GET', '/api/v1/health')).status, 200)
    emu.setFaults({ rules: [{ route: 'entitlements', kind: 'error' }] })
    assert.equal(await statusOf(sdk(emu).getEntitlements('free-customer')), 503)
    assert.deepEqual(emu.requestCounts(), { token: 2, reportUsage: 1, health: 1, entitlements: 1 })
    assert.deepEqual(emu.faultCounts(), { error: 2 })
  })

  it('answers 429 with Retry-After', async () => {
    emu.setFaults({
      rules: [
        { route: 'reportUsage', kind: 'rate-limit', retryAfterS: 7 },
        { route: 'health', kind: 'rate-limit' },
      ],
    })
    const limited = await raw(emu, 'POST', usagePath, { token, body: { usage: 1 } })
    assert.equal(limited.status, 429)
    assert.equal(limited.headers.get('retry-after'), '7')
    assert.equal((await raw(emu, 'GET', '/api/v1/health')).headers.get('retry-after'), '1')
    assert.equal(emu.recordedUsage(), 0)
    assert.deepEqual(emu.faultCounts(), { 'rate-limit': 2 })
  })

  it('adds latency to the routes of a rule only, on top of the global latency', async () => {
    emu.setFaults({ rules: [{ route: 'health', kind: 'latency', latencyMs: 100 }] })
    emu.setLatency(50)
    const started = performance.now()
    assert.equal(await outcome(emu, 'GET', '/api/v1/health'), 200)
    assert.ok(performance.now() - started >= 145, 'the answer came before global + rule latency')

    // A minute of latency on one route: another route can only answer in time if it is not delayed.
    emu.setLatency(0)
    emu.setFaults({ rules: [{ route: 'getProduct', kind: 'latency', latencyMs: 60_000 }] })
    assert.equal(await outcome(emu, 'GET', '/api/v1/health', { timeoutMs: 5_000 }), 200)
    assert.equal(await outcome(emu, 'GET', '/api/v1/products/acme-api', { token, timeoutMs: 1_000 }), 'timeout')
    assert.deepEqual(emu.faultCounts(), { latency: 2 })
  })

  it('hangs until the client gives up', async () => {
    emu.setFaults({ rules: [{ route: '*', kind: 'hang' }] })
    assert.equal(await outcome(emu, 'GET', '/api/v1/health', { timeoutMs: 1_000 }), 'timeout')
    assert.equal(await outcome(emu, 'POST', usagePath, { token, body: { usage: 1 }, timeoutMs: 1_000 }), 'timeout')
    assert.equal(emu.recordedUsage(), 0)
    emu.clearFaults()
    assert.equal(await outcome(emu, 'GET', '/api/v1/health'), 200)
    assert.deepEqual(emu.requestCounts(), { token: 1, health: 2, reportUsage: 1 })
  })

  it('resets the connection without an answer', async () => {
    emu.setFaults({ rules: [{ route: 'reportUsage', kind: 'reset' }] })
    await assert.rejects(
      fetch(`${emu.url}${usagePath}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ usage: 1 }),
      }),
      (error: Error & { cause?: { code?: string } }) =>
        error instanceof TypeError && error.cause?.code === 'ECONNRESET',
    )
    assert.equal(emu.recordedUsage(), 0)
    assert.equal(await outcome(emu, 'GET', '/api/v1/health'), 200)
    assert.deepEqual(emu.faultCounts(), { reset: 1 })
  })

  describe('apply-then-fail', () => {
    it('records the usage exactly once although the client sees a 5xx', async () => {
      emu.setFaults({ rules: [{ route: 'reportUsage', kind: 'apply-then-fail', status: 500 }] })
      assert.equal(await statusOf(sdk(emu).reportUsage('free-customer', 'api-call', 3)), 500)
      assert.equal(emu.recordedUsage({ customerId: 'free-customer', meteringId: 'api-call' }), 3)
      assert.equal(emu.meteringRecords().length, 1)
      assert.deepEqual(emu.faultCounts(), { 'apply-then-fail': 1 })
    })

    it('records the usage although the connection is reset or hangs', async () => {
      emu.setFaults({ rules: [{ route: 'reportUsage', kind: 'apply-then-fail', mode: 'reset' }] })
      assert.equal(await outcome(emu, 'POST', usagePath, { token, body: { usage: 2 } }), 'reset')
      assert.equal(emu.recordedUsage(), 2)
      emu.setFaults({ rules: [{ route: 'reportUsage', kind: 'apply-then-fail', mode: 'hang' }] })
      assert.equal(await outcome(emu, 'POST', usagePath, { token, body: { usage: 5 }, timeoutMs: 1_000 }), 'timeout')
      assert.equal(emu.recordedUsage(), 7)
      assert.equal(emu.meteringRecords().length, 2)
      assert.deepEqual(emu.faultCounts(), { 'apply-then-fail': 2 })
    })

    it('lets a failure of the route itself through, recording nothing', async () => {
      emu.setFaults({ rules: [{ route: 'reportUsage', kind: 'apply-then-fail' }] })
      assert.equal(await outcome(emu, 'POST', usagePath, { token: 'stale', body: { usage: 2 } }), 401)
      assert.equal(await outcome(emu, 'POST', usagePath, { token, body: { usage: 'x' } }), 422)
      assert.equal(emu.recordedUsage(), 0)
      assert.deepEqual(emu.faultCounts(), {})
    })
  })

  it('revokes tokens and sets the aggregation lag through the fault API', async () => {
    emu.setFaults({ revokeTokens: true, aggregationLagMs: 60_000 })
    assert.equal(await outcome(emu, 'GET', '/api/v1/products/acme-api', { token }), 401)
    const planship = sdk(emu)
    await planship.reportUsage('free-customer', 'api-call', 10)
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 100)
    emu.advanceClock(60_000)
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 90)
  })

  it('is down until set up again, keeping port, state and rules', async () => {
    emu.setFaults({ rules: [{ route: 'health', kind: 'rate-limit' }] })
    await sdk(emu).reportUsage('free-customer', 'api-call', 4)
    const planship = sdk(emu)
    await planship.getEntitlements('pro-customer') // the SDK keeps this token

    emu.setDown(true)
    assert.equal(await outcome(emu, 'GET', '/api/v1/health'), 'reset')
    assert.equal(await outcome(emu, 'POST', '/api/v1/auth/token'), 'reset')
    await assert.rejects(planship.getEntitlements('free-customer'))
    // Admin routes keep working while down.
    assert.deepEqual((await raw(emu, 'GET', '/_emulator/usage')).body, { usage: 4 })

    const put = await raw(emu, 'PUT', '/_emulator/faults', { body: { down: false } })
    assert.equal(put.status, 200)
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 96)
    assert.equal(await outcome(emu, 'GET', '/api/v1/health'), 429)
    assert.deepEqual(emu.faultCounts(), { down: 3, 'rate-limit': 1 })
    assert.equal(emu.requestCounts().health, 2)

    assert.equal((await raw(emu, 'PUT', '/_emulator/faults', { body: { down: true } })).status, 200)
    assert.equal(await outcome(emu, 'GET', '/api/v1/health'), 'reset')
  })

  it('never fires a rule at rate 0 and always at rate 1', async () => {
    emu.setFaults({
      rules: [
        { route: 'health', kind: 'error', rate: 0 },
        { route: 'health', kind: 'rate-limit', rate: 1 },
      ],
    })
    for (let i = 0; i < 20; i++) assert.equal(await outcome(emu, 'GET', '/api/v1/health'), 429)
    assert.deepEqual(emu.faultCounts(), { 'rate-limit': 20 })
  })

  it('reset() clears faults, counts and down, and restarts the seed', async () => {
    emu.setFaults({ seed: 9, rules: [{ route: '*', kind: 'error' }], down: true })
    assert.equal(await outcome(emu, 'GET', '/api/v1/health'), 'reset')
    emu.reset()
    assert.equal(await outcome(emu, 'GET', '/api/v1/health'), 200)
    assert.deepEqual(emu.faultCounts(), {})
    const current = (await raw(emu, 'GET', '/_emulator/faults')).body
    assert.deepEqual(current, { config: { seed: 1, rules: [], down: false, aggregation_lag_ms: 0 }, counts: {} })
  })

  describe('admin route', () => {
    it('round-trips the config with defaults filled in, and counts', async () => {
      const config = {
        seed: 1,
        rules: [
          { route: 'reportUsage', rate: 0.3, kind: 'error', status: 503 },
          { route: 'health', kind: 'rate-limit', retry_after_s: 4 },
          { route: '*', kind: 'latency', rate: 0.5, latency_ms: 0 },
          { route: 'reportUsage', kind: 'apply-then-fail', rate: 0 },
          { route: 'token', kind: 'apply-then-fail', rate: 0, mode: 'hang' },
        ],
        down: false,
      }
      const expected = {
        seed: 1,
        rules: [
          { route: 'reportUsage', rate: 0.3, kind: 'error', status: 503 },
          { route: 'health', rate: 1, kind: 'rate-limit', retry_after_s: 4 },
          { route: '*', rate: 0.5, kind: 'latency', latency_ms: 0 },
          { route: 'reportUsage', rate: 0, kind: 'apply-then-fail', mode: 'status', status: 503 },
          { route: 'token', rate: 0, kind: 'apply-then-fail', mode: 'hang' },
        ],
        down: false,
        aggregation_lag_ms: 0,
      }
      const put = await raw(emu, 'PUT', '/_emulator/faults', { body: config })
      assert.equal(put.status, 200)
      assert.deepEqual(put.body, { config: expected, counts: {} })

      assert.equal(await outcome(emu, 'GET', '/api/v1/health'), 429)
      const got = (await raw(emu, 'GET', '/_emulator/faults')).body as { config: unknown; counts: unknown }
      assert.equal(got.counts && (got.counts as Record<string, number>)['rate-limit'], 1)
      assert.deepEqual(got.config, expected)
      // What GET shows can be PUT back as is.
      assert.deepEqual(
        ((await raw(emu, 'PUT', '/_emulator/faults', { body: got.config })).body as typeof got).config,
        expected,
      )

      // Fields left out keep their value.
      await raw(emu, 'PUT', '/_emulator/faults', { body: { aggregation_lag_ms: 500 } })
      const merged = (await raw(emu, 'GET', '/_emulator/faults')).body as { config: typeof expected }
      assert.deepEqual(merged.config, { ...expected, aggregation_lag_ms: 500 })

      const cleared = await raw(emu, 'DELETE', '/_emulator/faults')
      assert.equal(cleared.status, 200)
      assert.deepEqual(cleared.body, {
        config: { seed: 1, rules: [], down: false, aggregation_lag_ms: 500 },
        counts: {},
      })
      assert.equal(await outcome(emu, 'GET', '/api/v1/health'), 200)
    })

    it('revokes tokens', async () => {
      const put = await raw(emu, 'PUT', '/_emulator/faults', { body: { revoke_tokens: true } })
      assert.equal(put.status, 200)
      assert.equal(await outcome(emu, 'GET', '/api/v1/products/acme-api', { token }), 401)
    })

    it('rejects bad input with 422 naming the field, changing nothing', async () => {
      const rule = (extra: Record<string, unknown>) => ({ rules: [{ route: '*', kind: 'error', ...extra }] })
      const cases: Array<[unknown, Array<string | number>]> = [
        [rule({ route: 'nope' }), ['body', 'rules', 0, 'route']],
        [rule({ kind: 'boom' }), ['body', 'rules', 0, 'kind']],
        [rule({ rate: 1.5 }), ['body', 'rules', 0, 'rate']],
        [rule({ rate: '0.5' }), ['body', 'rules', 0, 'rate']],
        [rule({ status: 404 }), ['body', 'rules', 0, 'status']],
        [rule({ kind: 'latency' }), ['body', 'rules', 0, 'latency_ms']],
        [rule({ kind: 'latency', latency_ms: -1 }), ['body', 'rules', 0, 'latency_ms']],
        [rule({ kind: 'hang', status: 503 }), ['body', 'rules', 0, 'status']],
        [rule({ kind: 'apply-then-fail', mode: 'reset', status: 500 }), ['body', 'rules', 0, 'status']],
        [rule({ kind: 'apply-then-fail', mode: 'explode' }), ['body', 'rules', 0, 'mode']],
        [rule({ kind: 'rate-limit', retry_after_s: 1.5 }), ['body', 'rules', 0, 'retry_after_s']],
        [rule({ kind: 'rate-limit', retryAfterS: 2 }), ['body', 'rules', 0, 'retryAfterS']],
        [{ rules: [{ kind: 'error' }] }, ['body', 'rules', 0, 'route']],
        [{ rules: [null] }, ['body', 'rules', 0]],
        [{ rules: {} }, ['body', 'rules']],
        [{ seed: 1.5 }, ['body', 'seed']],
        [{ down: 'yes' }, ['body', 'down']],
        [{ aggregation_lag_ms: -1 }, ['body', 'aggregation_lag_ms']],
        [{ revoke_tokens: 1 }, ['body', 'revoke_tokens']],
        [{ downn: true }, ['body', 'downn']],
        [[], ['body']],
      ]
      emu.setFaults({ seed: 5, rules: [{ route: 'health', kind: 'rate-limit' }] })
      const before = (await raw(emu, 'GET', '/_emulator/faults')).body
      for (const [body, loc] of cases) {
        const response = await raw(emu, 'PUT', '/_emulator/faults', { body })
        assert.equal(response.status, 422, JSON.stringify(body))
        const detail = (response.body as { detail: Array<{ loc: unknown; msg: unknown }> }).detail
        assert.deepEqual(detail[0]?.loc, loc, JSON.stringify(body))
        assert.equal(typeof detail[0]?.msg, 'string')
      }
      assert.equal((await raw(emu, 'PUT', '/_emulator/faults', { rawBody: 'nope' })).status, 422)
      assert.equal((await raw(emu, 'PUT', '/_emulator/faults')).status, 422)
      assert.deepEqual((await raw(emu, 'GET', '/_emulator/faults')).body, before)
    })
  })

  it('validates the programmatic API with a TypeError naming the field', async () => {
    const bad = (config: unknown) => () => emu.setFaults(config as never)
    assert.throws(bad({ rules: [{ route: 'nope', kind: 'error' }] }), {
      name: 'TypeError',
      message: /config\.rules\[0\]\.route/,
    })
    assert.throws(bad({ rules: [{ route: '*', kind: 'latency' }] }), /config\.rules\[0\]\.latencyMs is required/)
    assert.throws(
      bad({ rules: [{ route: '*', kind: 'error', retry_after_s: 1 }] }),
      /config\.rules\[0\]\.retry_after_s/,
    )
    assert.throws(bad({ seed: Number.NaN }), /config\.seed/)
    assert.throws(bad(null), /config must be an object/)
    assert.throws(() => emu.setDown('yes' as never), { name: 'TypeError', message: /down/ })
    await assert.rejects(startEmulator({ faults: { rules: [{ route: '*', kind: 'error', rate: 2 }] } }), {
      name: 'TypeError',
      message: /faults\.rules\[0\]\.rate must be a number from 0 to 1/,
    })
    // A rejected call changes nothing.
    assert.equal(await outcome(emu, 'GET', '/api/v1/health'), 200)
  })
})

describe('emulator fault determinism', () => {
  const rules: FaultRule[] = [
    { route: 'reportUsage', kind: 'error', rate: 0.25, status: 500 },
    { route: 'reportUsage', kind: 'reset', rate: 0.15 },
    { route: '*', kind: 'rate-limit', rate: 0.15, retryAfterS: 2 },
    { route: 'reportUsage', kind: 'apply-then-fail', rate: 0.15 },
    { route: 'health', kind: 'latency', rate: 0.3, latencyMs: 1 },
  ]

  /** The same 40 requests, one after the other, against a fresh emulator with `seed`. */
  async function run(seed: number, emu?: Emulator) {
    const own = emu ?? (await startEmulator())
    try {
      const token = await getToken(own)
      own.setFaults({ seed, rules })
      const outcomes: Outcome[] = []
      for (let i = 0; i < 40; i++) {
        outcomes.push(
          i % 4 === 3
            ? await outcome(own, 'GET', '/api/v1/health')
            : await outcome(own, 'POST', usagePath, { token, body: { usage: 1 } }),
        )
      }
      return { outcomes, counts: own.faultCounts(), usage: own.recordedUsage(), requests: own.requestCounts() }
    } finally {
      if (emu === undefined) await own.close()
    }
  }

  it('gives the same faults to the same requests with the same seed', async () => {
    const [first, second] = await Promise.all([run(42), run(42)])
    assert.deepEqual(second, first)
    // Every kind shows up, and so do successes.
    for (const seen of [200, 500, 429, 'reset'] as const) assert.ok(first.outcomes.includes(seen), `no ${seen}`)
    assert.ok((first.counts['apply-then-fail'] ?? 0) > 0)
    assert.ok((first.counts.latency ?? 0) > 0)
    assert.deepEqual(first.requests, { token: 1, reportUsage: 30, health: 10 })
    // Usage is recorded for successes and for apply-then-fail, and only for those.
    const succeeded = first.outcomes.filter((o, i) => i % 4 !== 3 && o === 200).length
    assert.equal(first.usage, succeeded + (first.counts['apply-then-fail'] ?? 0))

    const other = await run(7)
    assert.notDeepEqual(other.outcomes, first.outcomes)
  })

  it('replays the sequence when reseeded, on a running emulator', async () => {
    const emu = await startEmulator()
    try {
      const first = await run(42, emu)
      emu.clearFaults()
      const second = await run(42, emu)
      assert.deepEqual(second.outcomes, first.outcomes)
    } finally {
      await emu.close()
    }
  })

  it('applies faults given at start from the first request', async () => {
    const healthRules: FaultRule[] = [{ route: 'health', kind: 'error', rate: 0.5 }]
    const started = await startEmulator({ faults: { seed: 42, rules: healthRules, aggregationLagMs: 1_000 } })
    const set = await startEmulator()
    try {
      set.setFaults({ seed: 42, rules: healthRules })
      const sequence = async (emu: Emulator) => {
        const outcomes: Outcome[] = []
        for (let i = 0; i < 20; i++) outcomes.push(await outcome(emu, 'GET', '/api/v1/health'))
        return outcomes
      }
      const outcomes = await sequence(started)
      assert.deepEqual(await sequence(set), outcomes)
      assert.ok(outcomes.includes(200) && outcomes.includes(503))
      const config = ((await raw(started, 'GET', '/_emulator/faults')).body as { config: unknown }).config
      assert.deepEqual(config, {
        seed: 42,
        rules: [{ route: 'health', kind: 'error', rate: 0.5, status: 503 }],
        down: false,
        aggregation_lag_ms: 1_000,
      })
      // reset() clears the rules but keeps the start seed and lag.
      started.reset()
      const afterReset = ((await raw(started, 'GET', '/_emulator/faults')).body as { config: unknown }).config
      assert.deepEqual(afterReset, { seed: 42, rules: [], down: false, aggregation_lag_ms: 1_000 })
    } finally {
      await Promise.all([started.close(), set.close()])
    }
  })
})

describe('emulator fault injection and close', () => {
  it('drops hung requests on close, so nothing keeps the process alive', async () => {
    const emu = await startEmulator({
      faults: {
        rules: [
          { route: 'health', kind: 'hang' },
          { route: 'reportUsage', kind: 'apply-then-fail', mode: 'hang' },
        ],
      },
    })
    const token = await getToken(emu)
    const pending = [
      outcome(emu, 'GET', '/api/v1/health', { timeoutMs: 60_000 }),
      outcome(emu, 'GET', '/api/v1/health', { timeoutMs: 60_000 }),
      outcome(emu, 'POST', usagePath, { token, body: { usage: 1 }, timeoutMs: 60_000 }),
    ]
    await arrived(emu, 'health', 2)
    await arrived(emu, 'reportUsage', 1)
    while (emu.recordedUsage() < 1) await sleep(5)
    await emu.close()
    assert.deepEqual(await Promise.all(pending), ['reset', 'reset', 'reset'])
    assert.deepEqual(emu.faultCounts(), { hang: 2, 'apply-then-fail': 1 })
  })
})
