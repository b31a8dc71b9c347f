import assert from 'node:assert/strict'
import { createMeter, type MeterOptions } from '../src/index.js'

const valid: MeterOptions = {
  productSlug: 'acme-api',
  planship: { baseUrl: 'http://127.0.0.1:1', clientId: 'id', clientSecret: 'very-secret-value' },
  identify: () => undefined,
}

describe('createMeter() options', () => {
  const cases: Array<[string, (o: MeterOptions) => unknown]> = [
    ['productSlug', (o) => ({ ...o, productSlug: '' })],
    ['planship', (o) => ({ ...o, planship: undefined })],
    ['planship.clientId', (o) => ({ ...o, planship: { ...o.planship, clientId: 7 } })],
    ['planship.clientSecret', (o) => ({ ...o, planship: { ...o.planship, clientSecret: '' } })],
    ['planship.baseUrl', (o) => ({ ...o, planship: { ...o.planship, baseUrl: 'not a url' } })],
    ['planship.baseUrl', (o) => ({ ...o, planship: { ...o.planship, baseUrl: 'ftp://planship.io' } })],
    ['planship.timeoutMs', (o) => ({ ...o, planship: { ...o.planship, timeoutMs: 0 } })],
    ['planship.clientAuth', (o) => ({ ...o, planship: { ...o.planship, clientAuth: 'digest' } })],
    ['identify', (o) => ({ ...o, identify: 'x-customer-id' })],
    ['cache', (o) => ({ ...o, cache: 5 })],
    ['cache.ttlMs', (o) => ({ ...o, cache: { ttlMs: -1 } })],
    ['cache.ttlMs', (o) => ({ ...o, cache: { ttlMs: 1.5 } })],
    ['cache.maxStaleMs', (o) => ({ ...o, cache: { maxStaleMs: Number.NaN } })],
    ['cache.max', (o) => ({ ...o, cache: { max: 0 } })],
    ['cache.aggregationLagMs', (o) => ({ ...o, cache: { aggregationLagMs: -5 } })],
    ['reporting.flushIntervalMs', (o) => ({ ...o, reporting: { flushIntervalMs: 0 } })],
    ['reporting.maxConcurrency', (o) => ({ ...o, reporting: { maxConcurrency: Infinity } })],
    ['reporting.closeTimeoutMs', (o) => ({ ...o, reporting: { closeTimeoutMs: '10s' } })],
    ['failMode', (o) => ({ ...o, failMode: 'ajar' })],
    ['onDenied', (o) => ({ ...o, onDenied: 'deny' })],
    ['fetch', (o) => ({ ...o, fetch: {} })],
    ['clock', (o) => ({ ...o, clock: {} })],
  ]

  for (const [option, mutate] of cases) {
    it(`throws a TypeError naming \`${option}\` when it is invalid`, () => {
      assert.throws(
        () => createMeter(mutate(valid) as MeterOptions),
        (error: unknown) => {
          assert.ok(error instanceof TypeError)
          assert.match(error.message, new RegExp(`\`${option.replace('.', '\\.')}\``))
          assert.doesNotMatch(error.message, /very-secret-value/)
          return true
        },
      )
    })
  }

  it('throws a TypeError for invalid per-route options', async () => {
    const meter = createMeter(valid)
    assert.throws(() => meter.consume(''), TypeError)
    assert.throws(() => meter.consume('api-call', { cost: -1 }), /`cost`/)
    assert.throws(() => meter.consume('api-call', { cost: 0.5 }), /`cost`/)
    assert.throws(() => meter.consume('api-call', { usage: Number.NaN }), /`usage`/)
    assert.throws(() => meter.consume('api-call', { bucket: 3 as unknown as string }), /`bucket`/)
    assert.throws(() => meter.consume('api-call', { shouldReport: true as unknown as () => boolean }), /`shouldReport`/)
    assert.throws(() => meter.requireFeature(''), TypeError)
    await meter.close()
  })

  it('accepts a base URL with a trailing slash and keeps explicit zeros (?? not ||)', async () => {
    const meter = createMeter({
      ...valid,
      planship: { ...valid.planship, baseUrl: 'http://127.0.0.1:1/' },
      cache: { maxStaleMs: 0, aggregationLagMs: 0 },
      reporting: { closeTimeoutMs: 0 },
    })
    await meter.close()
  })
})
