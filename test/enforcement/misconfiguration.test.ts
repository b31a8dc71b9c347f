import assert from 'node:assert/strict'
import request from 'supertest'
import { createMeter, type Meter, type MeterEvent, PlanshipMeterError } from '../../src/index.js'
import { appWith, eventually, type Harness, manualClock, startHarness, until } from '../helpers/harness.js'

function consuming(meter: Meter, meteringId = 'api-call') {
  const koa = appWith(meter.consume(meteringId))
  return (customerId = 'pro-customer') => request(koa.callback()).post('/').set('x-customer-id', customerId)
}

describe('misconfiguration is loud, once', () => {
  let h: Harness
  beforeEach(async () => {
    h = await startHarness()
  })
  afterEach(() => h.close())

  it('a product slug Planship does not know is a configuration error, not an unknown customer', async () => {
    const meter = createMeter({ ...h.options, productSlug: 'acme-apj', failMode: 'closed' })
    const call = consuming(meter)
    const res = await call().expect(503)
    assert.equal(res.body.error.code, 'planship_unavailable')
    await call('free-customer').expect(503)
    const lines = h.logger.lines.filter((line) => line.includes('PLANSHIP_PRODUCT_NOT_FOUND'))
    assert.equal(lines.length, 1, lines.join('\n'))
    assert.match(lines[0]!, /^error .*check the productSlug option/)
    await assert.rejects(meter.check(), { code: 'PLANSHIP_PRODUCT_NOT_FOUND' })
    await meter.close()
  })

  it('refused credentials are a configuration error, logged at error level at the first request, with what to check', async () => {
    const meter = createMeter({ ...h.options, planship: { ...h.options.planship, clientSecret: 'hunter2-wrong' } })
    const koa = appWith(meter.middleware(), meter.requireFeature('csv-export'), meter.consume('api-call'))
    // failMode 'open' (the default) still decides: the request goes through, feature included.
    await request(koa.callback()).post('/').set('x-customer-id', 'free-customer').expect(200)
    const errors = h.logger.lines.filter((line) => line.startsWith('error '))
    assert.equal(errors.length, 1, h.logger.lines.join('\n'))
    assert.equal(
      errors[0],
      `error Planship configuration error (not an outage): Planship at ${h.emu.url} refused the client credentials ` +
        `of client id "demo-client-id" (HTTP 401): check planship.clientId and planship.clientSecret, and that ` +
        `planship.baseUrl is the Planship they were issued by. Until it is fixed, requests are admitted without ` +
        `checking quotas or features (failMode: 'open') {"code":"PLANSHIP_AUTH_FAILED"}`,
    )
    assert.ok(!h.logger.lines.some((line) => line.startsWith('warn no usable Planship data')))
    assert.ok(!h.logger.lines.some((line) => line.includes('hunter2')), 'the secret is never logged')
    await meter.close()
  })

  it('an unknown product says so at error level with the base URL, the client id and the slug; failMode closed refuses', async () => {
    const meter = createMeter({ ...h.options, productSlug: 'acme-apj', failMode: 'closed' })
    await consuming(meter)().expect(503)
    assert.deepEqual(
      h.logger.lines.filter((line) => line.startsWith('error ')),
      [
        `error Planship configuration error (not an outage): Planship at ${h.emu.url} does not know the product ` +
          `"acme-apj" (client id "demo-client-id"): check the productSlug option, and that the credentials belong ` +
          `to the organization that has the product. Until it is fixed, metered and feature-gated requests are ` +
          `refused with 503 (failMode: 'closed') {"code":"PLANSHIP_PRODUCT_NOT_FOUND"}`,
      ],
    )
    await meter.close()
  })

  it('check() passes with good settings and names what is wrong otherwise, never the secret', async () => {
    await h.meter.check()
    const badSecret = createMeter({ ...h.options, planship: { ...h.options.planship, clientSecret: 'hunter2-wrong' } })
    const authError = await badSecret.check().catch((e: unknown) => e)
    assert.ok(authError instanceof PlanshipMeterError)
    assert.equal(authError.code, 'PLANSHIP_AUTH_FAILED')
    assert.doesNotMatch(String(authError.message), /hunter2/)
    const port = Number(new URL(h.emu.url).port)
    const emu = h.emu
    await emu.close()
    const fresh = createMeter(h.options) // no pooled connection: the next one is refused
    const unreachable = await fresh.check().catch((e: unknown) => e)
    assert.ok(unreachable instanceof PlanshipMeterError)
    assert.equal(unreachable.code, 'PLANSHIP_UNREACHABLE')
    assert.match(unreachable.message, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}`))
    h.emu = await (await import('../../src/emulator/index.js')).startEmulator({ port })
    await Promise.all([badSecret.close(), fresh.close()])
  })

  it('a metering id that feeds no lever is logged at error level once per id, and emitted', async () => {
    const events: MeterEvent[] = []
    const meter = createMeter({ ...h.options, onEvent: (event) => events.push(event) })
    const call = consuming(meter, 'api-cal')
    for (let i = 0; i < 3; i++) await call().expect(200)
    await call('free-customer').expect(200)
    const said = () => h.logger.lines.filter((line) => line.includes('"api-cal" feeds no lever'))
    await until(() => said().length > 0)
    assert.equal(said().length, 1)
    assert.match(said()[0]!, /^error .*Did you mean "api-call" \(it feeds api-calls\)\?/)
    const misconfigured = events.filter((event) => event.type === 'misconfiguration')
    assert.deepEqual(
      misconfigured.map((event) => event.type === 'misconfiguration' && event.meteringId),
      ['api-cal'],
    )
    await meter.close()
  })

  it("a lever's slug given as a metering id names the metering id that feeds it", async () => {
    await consuming(h.meter, 'api-calls')().expect(200)
    const said = () => h.logger.lines.filter((line) => line.includes('feeds no lever'))
    await until(() => said().length > 0)
    assert.deepEqual(said(), [
      'error metering id "api-calls" feeds no lever of the product: its usage is reported but limits nothing. ' +
        `"api-calls" is a lever's slug; its metering id is "api-call". {"meteringId":"api-calls"}`,
    ])
  })

  it('a metering id close to none lists those of the product; the product is read once for any number of them', async () => {
    for (const id of ['thumbnail', 'upload']) await consuming(h.meter, id)().expect(200)
    const said = () => h.logger.lines.filter((line) => line.includes('feeds no lever'))
    await eventually(() => said().length === 2, 'one line for each of the two ids')
    const listed = `The product's metering ids: "api-call", "render", "export".`
    assert.ok(
      said().every((line) => line.includes(listed)),
      said().join('\n'),
    )
    assert.equal(h.meter.planshipCalls().listLevers, 1)
  })

  it('requireFeature failing open logs and emits, as consume does', async () => {
    const events: MeterEvent[] = []
    const meter = createMeter({ ...h.options, failMode: 'open', onEvent: (event) => events.push(event) })
    const koa = appWith(meter.requireFeature('csv-export'))
    h.emu.setDown(true)
    await request(koa.callback()).get('/').set('x-customer-id', 'free-customer').expect(200)
    h.emu.setDown(false)
    assert.ok(h.logger.lines.some((line) => line.startsWith('warn no usable Planship data; failing open')))
    assert.ok(events.some((event) => event.type === 'error' && event.message.includes('failing open')))
    await meter.close()
  })

  it('repeated warnings are written once per interval, with the count of those left out', async () => {
    const clock = manualClock()
    const meter = createMeter({ ...h.options, clock, failMode: 'open' })
    const call = consuming(meter)
    h.emu.setDown(true)
    for (let i = 0; i < 5; i++) await call(`ghost-${i}`).expect(200)
    const failing = () => h.logger.lines.filter((line) => line.startsWith('warn no usable Planship data'))
    assert.equal(failing().length, 1)
    clock.advance(61_000)
    await call('ghost-late').expect(200)
    assert.equal(failing().length, 2)
    assert.match(failing()[1]!, /"repeated":4/)
    h.emu.setDown(false)
    await meter.close()
  })

  it('a throwing identify is logged with its own message', async () => {
    const meter = createMeter({
      ...h.options,
      identify: () => {
        throw new Error('session store timed out')
      },
    })
    await consuming(meter)().expect(500)
    assert.ok(h.logger.lines.some((line) => line.includes('the identify option threw: session store timed out')))
    await meter.close()
  })
})
