import assert from 'node:assert/strict'
import request from 'supertest'
import { createMeter } from '../../src/index.js'
import { RedisUsageStore } from '../../src/redis/index.js'
import { appWith, type Harness, startHarness } from '../helpers/harness.js'
import { connected, freePort, redisClient, uniquePrefix } from '../redis/support.js'
import { startSdk, type TestSdk } from './sdk.js'

describe('OpenTelemetry instrumentation of the Redis store', function () {
  this.timeout(10_000)
  let sdk: TestSdk
  let h: Harness

  beforeEach(async () => {
    sdk = startSdk() // before createMeter(), as an app must
    h = await startHarness()
  })
  afterEach(async () => {
    await h.close()
    await sdk.stop()
  })

  it('times every Redis call by operation, never naming a customer', async () => {
    const client = await connected(redisClient())
    const meter = createMeter({ ...h.options, store: new RedisUsageStore({ client, keyPrefix: uniquePrefix('otel') }) })
    const app = appWith(meter.consume('api-call')).callback()
    for (let i = 0; i < 3; i++) await request(app).post('/').set('x-customer-id', 'pro-customer').expect(200)
    await meter.close()
    const points = await sdk.points('planship_meter.store.duration')
    assert.ok(points.length > 0, 'Redis calls were timed')
    assert.ok((await sdk.total('planship_meter.store.duration')) >= 6, 'at least a reserve and a commit per request')
    for (const point of points) {
      const operation = point.attributes['planship_meter.store.operation']
      assert.equal(typeof operation, 'string')
      assert.doesNotMatch(JSON.stringify(point.attributes), /pro-customer/)
    }
    assert.equal(await sdk.total('planship_meter.store.fallbacks'), 0)
    client.disconnect()
  })

  it('counts a fallback to local decisions when Redis does not answer', async () => {
    const client = redisClient(`redis://127.0.0.1:${await freePort()}`) // nothing listens there
    client.on('error', () => {})
    const meter = createMeter({ ...h.options, store: new RedisUsageStore({ client, keyPrefix: uniquePrefix('otel') }) })
    const app = appWith(meter.consume('api-call')).callback()
    await request(app).post('/').set('x-customer-id', 'pro-customer').expect(200)
    await request(app).post('/').set('x-customer-id', 'pro-customer').expect(200)
    assert.equal(await sdk.total('planship_meter.store.fallbacks'), 1, 'one fallback, not one per request')
    await meter.close()
    client.disconnect()
  })
})
