import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import Koa from 'koa'
import request from 'supertest'
import { createMeter, type DecisionRecord, type Meter, type PlanshipState } from '../../src/index.js'
import { type Harness, startHarness } from '../helpers/harness.js'

function app(meter: Meter) {
  const koa = new Koa<PlanshipState>()
  koa.use(meter.consume('api-call'))
  koa.use((ctx) => {
    ctx.body = { decision: ctx.state.planship?.decisions[0] }
  })
  return () => request(koa.callback()).post('/').set('x-customer-id', 'pro-customer')
}

/** A fetch that answers entitlements with `api-calls` set to `value` (raw JSON), and the emulator otherwise. */
function entitlementsSaying(rawValue: string): typeof fetch {
  return async (input, init) => {
    const url = String(input)
    if (!url.endsWith('/entitlements')) return fetch(input, init)
    return new Response(`{"api-calls": ${rawValue}, "csv-export": true}`, {
      headers: { 'content-type': 'application/json' },
    })
  }
}

describe('values from Planship are validated', () => {
  let h: Harness
  beforeEach(async () => {
    h = await startHarness()
  })
  afterEach(() => h.close())

  // `1e999` parses as Infinity; "0" is a string; true is no allowance.
  const invalid = ['"lots"', '"0"', 'true', 'false', '1e999', '1.5', '-2', '[1]', '{"null":"x"}', '{}', 'null']

  for (const rawValue of invalid) {
    it(`a metered entitlement of ${rawValue} is invalid data: never unlimited, failMode decides, logged once`, async () => {
      const closed = createMeter({ ...h.options, failMode: 'closed', fetch: entitlementsSaying(rawValue) })
      const callClosed = app(closed)
      const res = await callClosed().expect(503)
      assert.equal(res.body.error.code, 'planship_unavailable')
      await callClosed().expect(503)
      const logged = h.logger.lines.filter((line) => line.startsWith("error Planship's entitlement for the metered"))
      assert.equal(logged.length, 1, 'logged once, not once per request')

      const open = createMeter({ ...h.options, failMode: 'open', fetch: entitlementsSaying(rawValue) })
      const admitted = await app(open)().expect(200)
      assert.equal((admitted.body.decision as DecisionRecord).source, 'fail-open')
      await Promise.all([closed.close(), open.close()])
    })
  }

  it('valid metered entitlements still decide: -1 is unlimited, 0 is no access', async () => {
    const unlimited = createMeter({ ...h.options, failMode: 'closed', fetch: entitlementsSaying('-1') })
    await app(unlimited)().expect(200)
    const none = createMeter({ ...h.options, failMode: 'closed', fetch: entitlementsSaying('0') })
    await app(none)().expect(429)
    await Promise.all([unlimited.close(), none.close()])
  })
})

describe('Planship answers are size-capped', () => {
  let server: http.Server
  let calls = 0
  const huge = `{"api-calls": 5, "padding": "${'x'.repeat(2 * 1024 * 1024)}"}`

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/api/v1/auth/token') {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ access_token: 'tok', token_type: 'bearer', expires_in: 3600 }))
        return
      }
      calls++
      res.setHeader('content-type', 'application/json')
      // Chunked, without a Content-Length: the cap must hold while reading, not only on the header.
      res.write(huge.slice(0, 1024))
      res.end(huge.slice(1024))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  })
  after(() => new Promise<void>((resolve) => server.close(() => resolve())))

  for (const transport of ['node:http', 'fetch'] as const) {
    it(`refuses an answer larger than planship.maxResponseBytes and never caches it (${transport})`, async () => {
      calls = 0
      const { port } = server.address() as AddressInfo
      const logLines: string[] = []
      const meter = createMeter({
        productSlug: 'acme-api',
        planship: {
          baseUrl: `http://127.0.0.1:${port}`,
          clientId: 'id',
          clientSecret: 'secret',
          maxResponseBytes: 64_000,
        },
        identify: (ctx) => ctx.get('x-customer-id') || undefined,
        failMode: 'closed',
        logger: {
          warn: (message, fields) => logLines.push(`${message} ${JSON.stringify(fields)}`),
          error: (message, fields) => logLines.push(`${message} ${JSON.stringify(fields)}`),
        },
        ...(transport === 'fetch' ? { fetch: (input, init) => fetch(input, init) } : {}),
        reporting: { flushIntervalMs: 3_600_000, closeTimeoutMs: 500 },
      })
      const call = app(meter)
      await call().expect(503)
      await call().expect(503)
      assert.ok(calls >= 1, 'the first request asked')
      // Had the answer been read and cached, api-calls: 5 would have admitted the request.
      assert.ok(logLines.some((line) => line.includes('failing closed') && line.includes('maxResponseBytes')))
      await meter.close()
    })
  }
})
