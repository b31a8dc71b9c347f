import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { SpanKind, SpanStatusCode } from '@opentelemetry/api'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import request from 'supertest'
import { demoApp, type Harness, manualClock, startHarness } from '../helpers/harness.js'
import { createTelemetry, decisionSink } from '../../src/telemetry/telemetry.js'
import { startSdk, type TestSdk } from './sdk.js'

const ENTITLEMENTS = 'GET /api/v1/customers/{customer_id}/products/{product_slug}/entitlements'
const USAGE = 'GET /api/v1/customers/{customer_id}/products/{product_slug}/usage/{metering_id}'
const REPORT = 'POST /api/v1/customers/{customer_id}/products/{product_slug}/usage/{metering_id}'
const TOKEN = 'POST /api/v1/auth/token'
/** Read after the first 429 of a rolling-window lever, for its Retry-After. */
const LEVER = 'GET /api/v1/products/{product_slug}/levers/{lever_slug}'

describe('OpenTelemetry instrumentation', () => {
  let sdk: TestSdk
  let h: Harness
  let clock: ReturnType<typeof manualClock>

  beforeEach(async () => {
    // The SDK is registered before createMeter(), as an app must (see createTelemetry).
    sdk = startSdk()
    clock = manualClock()
    h = await startHarness({ meter: { clock } })
  })

  afterEach(async () => {
    await h.close()
    await sdk.stop()
  })

  const post = (path: string, customer: string) =>
    request(demoApp(h.meter).app.callback()).post(path).set('x-customer-id', customer)
  const get = (path: string, customer?: string) => {
    const req = request(demoApp(h.meter).app.callback()).get(path)
    return customer === undefined ? req : req.set('x-customer-id', customer)
  }

  it('counts decisions, denials and units, reports and pending usage; spans every Planship call without ids', async () => {
    const customer = 'otel+1@example.com'
    const { id: uuid } = h.emu.createCustomer(customer, 'free')
    for (let i = 0; i < 5; i++) await post('/renders', customer).expect(200)
    await post('/renders', customer).expect(429)
    await get('/export', customer).expect(403)
    await get('/export', 'pro-customer').expect(200)
    await get('/export').expect(401)

    const decisions = (where: Record<string, string | boolean>) => sdk.total('planship_meter.decisions', where)
    const consume = { 'planship_meter.decision.kind': 'consume' }
    assert.equal(await decisions({ ...consume, 'planship_meter.decision.allowed': true }), 5)
    assert.equal(await decisions({ ...consume, 'planship_meter.decision.allowed': false }), 1)
    assert.equal(
      await decisions({ 'planship_meter.decision.kind': 'feature', 'planship_meter.decision.allowed': true }),
      1,
    )
    assert.equal(await decisions({ 'planship_meter.decision.source': 'fresh' }), 8)
    assert.equal(
      await sdk.total('planship_meter.denials', {
        'planship_meter.denial.code': 'quota_exceeded',
        'planship_meter.lever': 'renders-per-minute',
      }),
      1,
    )
    assert.equal(
      await sdk.total('planship_meter.denials', {
        'planship_meter.denial.code': 'feature_not_entitled',
        'planship_meter.lever': 'csv-export',
      }),
      1,
    )
    const unidentified = await sdk.points('planship_meter.denials')
    assert.deepEqual(
      unidentified
        .filter((p) => p.attributes['planship_meter.denial.code'] === 'customer_unidentified')
        .map((p) => p.attributes),
      [{ 'planship_meter.denial.code': 'customer_unidentified' }],
    )
    assert.equal(await sdk.total('planship_meter.units.admitted', { 'planship_meter.metering_id': 'render' }), 5)
    assert.equal(await sdk.total('planship_meter.pending.units'), 5)
    assert.equal(await sdk.total('planship_meter.pending.keys'), 1)

    await h.meter.flush()
    assert.equal(await sdk.total('planship_meter.reports', { 'planship_meter.report.outcome': 'delivered' }), 1)
    assert.equal(await sdk.total('planship_meter.units.reported'), 5)
    assert.equal(await sdk.total('planship_meter.pending.units'), 0)
    assert.equal(await sdk.total('planship_meter.pending.keys'), 0)
    assert.equal(await sdk.total('planship_meter.circuit_breaker.state'), 0)
    assert.equal(h.emu.recordedUsage({ customerId: customer, meteringId: 'render' }), 5)

    const duration = 'http.client.request.duration'
    const ok = { 'http.response.status_code': 200, 'http.request.method': 'GET', 'server.address': '127.0.0.1' }
    assert.equal(await sdk.total(duration, { ...ok, 'planship_meter.endpoint': 'entitlements' }), 2) // 2 customers
    assert.equal(await sdk.total(duration, { ...ok, 'planship_meter.endpoint': 'metering_id_usage' }), 1)
    assert.equal(
      await sdk.total(duration, { 'planship_meter.endpoint': 'report_usage', 'http.response.status_code': 200 }),
      1,
    )
    assert.equal(await sdk.total(duration, { 'planship_meter.endpoint': 'token', 'http.response.status_code': 200 }), 1)
    const [histogram] = await sdk.points(duration)
    assert.ok(histogram && (histogram.value as { sum: number }).sum < 10, 'recorded in seconds')

    // This meter's spans: a meter another test left running would report to this SDK too.
    const port = Number(new URL(h.emu.url).port)
    const spans = sdk.spans.getFinishedSpans().filter((span) => span.attributes['server.port'] === port)
    assert.deepEqual(new Set(spans.map((span) => span.name)), new Set([TOKEN, ENTITLEMENTS, USAGE, REPORT, LEVER]))
    for (const span of spans) {
      assert.equal(span.kind, SpanKind.CLIENT)
      assert.equal(
        span.status.code,
        SpanStatusCode.UNSET,
        `${span.name}: ${JSON.stringify(span.status)} ${JSON.stringify(span.events)}`,
      )
      assert.equal(span.attributes['url.template'], span.name.split(' ')[1])
      assert.equal(span.attributes['server.port'], Number(new URL(h.emu.url).port))
    }
    assert.equal(spans.find((span) => span.name === REPORT)?.attributes['planship_meter.endpoint'], 'report_usage')

    // No customer id (alternative or Planship's own), secret or token anywhere, encoded or not.
    const everything = JSON.stringify([spans.map(spanData), await allPoints(sdk)])
    for (const secret of [customer, encodeURIComponent(customer), uuid, 'pro-customer', h.emu.clientSecret, 'Bearer']) {
      assert.ok(!everything.includes(secret), `telemetry contains ${secret}`)
    }
    assert.doesNotMatch(everything, /url\.full|url\.path/)
  })

  it('reports retries, possibly duplicated and rejected units, and the circuit breaker through an outage', async () => {
    await post('/calls', 'pro-customer').expect(200) // token and pro-customer's data cached
    h.emu.setDown(true)
    // Unknown to Planship and admitted while it is down (failMode open): its report will be refused.
    await post('/calls', 'ghost@example.com').expect(200)
    assert.equal(await sdk.total('planship_meter.decisions', { 'planship_meter.decision.source': 'fail-open' }), 1)
    assert.equal(await sdk.total('planship_meter.circuit_breaker.state'), 2, 'open')
    const failed = sdk.spans.getFinishedSpans().filter((span) => span.status.code === SpanStatusCode.ERROR)
    assert.ok(failed.length > 0)
    for (const span of failed) assert.equal(span.attributes['error.type'], 'ECONNRESET')
    assert.ok((await sdk.total('http.client.request.duration', { 'error.type': 'ECONNRESET' })) > 0)

    await assert.rejects(h.meter.flush(), { code: 'FLUSH_INCOMPLETE' })
    assert.equal(await sdk.total('planship_meter.reports', { 'planship_meter.report.outcome': 'retried' }), 2)
    // A reset connection may have carried the report: sending it again may count it twice.
    assert.equal(await sdk.total('planship_meter.units.possibly_duplicated'), 2)

    h.emu.setDown(false)
    await assert.rejects(h.meter.flush(), { code: 'FLUSH_INCOMPLETE' }) // the ghost's report is refused
    assert.equal(await sdk.total('planship_meter.reports', { 'planship_meter.report.outcome': 'delivered' }), 1)
    assert.equal(await sdk.total('planship_meter.reports', { 'planship_meter.report.outcome': 'rejected' }), 1)
    assert.equal(await sdk.total('planship_meter.units.dropped', { 'planship_meter.report.outcome': 'rejected' }), 1)
    assert.equal(
      await sdk.total('http.client.request.duration', {
        'planship_meter.endpoint': 'report_usage',
        'error.type': '404',
      }),
      1,
    )

    // Reads wait out the backoff; then the next read is the probe, and its success closes the breaker.
    assert.equal(await sdk.total('planship_meter.circuit_breaker.state'), 2)
    clock.advance(60_000)
    assert.equal(await sdk.total('planship_meter.circuit_breaker.state'), 1, 'half-open')
    await post('/calls', 'free-customer').expect(200)
    assert.equal(await sdk.total('planship_meter.circuit_breaker.state'), 0, 'closed')
  })

  it('reports the final values once the meter is closed, not the last ones observed', async () => {
    await post('/calls', 'pro-customer').expect(200)
    assert.equal(await sdk.total('planship_meter.pending.units'), 1)
    await h.meter.close()
    assert.equal(await sdk.total('planship_meter.pending.units'), 0)
    assert.equal(await sdk.total('planship_meter.pending.keys'), 0)
  })
})

describe('OpenTelemetry instrumentation, provider registered after createMeter()', () => {
  it('records spans (the API proxies tracers) but no metrics (instruments come from the provider at createMeter time)', async () => {
    const h = await startHarness()
    const sdk = startSdk()
    try {
      await request(demoApp(h.meter).app.callback()).post('/calls').set('x-customer-id', 'pro-customer').expect(200)
      assert.ok(sdk.spans.getFinishedSpans().some((span) => span.name === ENTITLEMENTS))
      assert.deepEqual(await sdk.points('planship_meter.decisions'), [])
    } finally {
      await h.close()
      await sdk.stop()
    }
  })
})

describe('the decision sink', () => {
  it('counts nothing without an SDK registered first (its instruments stay no-ops), and counts with one', async () => {
    const unmetered = createTelemetry()!
    assert.equal(unmetered.metered, false)
    assert.equal(decisionSink(unmetered, undefined), undefined, 'a decision costs nothing')
    const events: unknown[] = []
    const sink = decisionSink(unmetered, (event) => events.push(event))
    sink?.('c', { kind: 'consume', subject: 'api-call', allowed: true, source: 'fresh' }, 1)
    assert.equal(events.length, 1, 'onEvent still gets every decision')
    await unmetered.close()
    const sdk = startSdk()
    const metered = createTelemetry()!
    try {
      assert.equal(metered.metered, true)
      decisionSink(metered, undefined)?.(
        'c',
        { kind: 'consume', subject: 'api-call', allowed: true, source: 'fresh' },
        1,
      )
      assert.equal(await sdk.total('planship_meter.decisions'), 1)
    } finally {
      await metered.close()
      await sdk.stop()
    }
  })
})

describe('without @opentelemetry/api installed', () => {
  it('createMeter() works and meters requests', function () {
    this.timeout(20_000)
    // A child process in which resolving @opentelemetry/api fails as it does when it is not installed.
    const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
    const child = spawnSync(
      process.execPath,
      ['--import', fixture('hide-otel-api.mjs'), '--import', 'tsx', fixture('meter-without-otel.ts')],
      { encoding: 'utf8', timeout: 15_000 },
    )
    assert.equal(child.status, 0, child.stderr + child.stdout)
    assert.match(child.stdout, /otel api: absent; statuses: 200,200; reported: 2/)
  })
})

function spanData(span: ReadableSpan) {
  return { name: span.name, attributes: span.attributes, status: span.status, events: span.events }
}

async function allPoints(sdk: TestSdk) {
  const names = [
    'planship_meter.decisions',
    'planship_meter.denials',
    'planship_meter.units.admitted',
    'planship_meter.units.reported',
    'planship_meter.units.dropped',
    'planship_meter.units.possibly_duplicated',
    'planship_meter.reports',
    'planship_meter.pending.units',
    'planship_meter.pending.keys',
    'planship_meter.circuit_breaker.state',
    'http.client.request.duration',
  ]
  return Promise.all(names.map((name) => sdk.points(name)))
}
