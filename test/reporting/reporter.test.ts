import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import Koa from 'koa'
import request from 'supertest'
import { startEmulator } from '../../src/emulator/index.js'
import { createMeter, type FlushResult, PlanshipMeterError, type PlanshipState } from '../../src/index.js'
import { type Harness, startHarness } from '../helpers/harness.js'

describe('usage reporting', () => {
  let h: Harness

  beforeEach(async () => {
    h = await startHarness()
  })
  afterEach(() => h.close())

  const metered = (meter = h.meter, bucket?: (ctx: Koa.Context) => string | undefined) => {
    const koa = new Koa<PlanshipState>()
    koa.use(meter.consume('api-call', bucket === undefined ? {} : { bucket }))
    koa.use((ctx) => {
      ctx.body = 'ok'
    })
    return koa.callback()
  }

  it('aggregates per customer × metering id × bucket: one POST per key per flush', async () => {
    const app = metered(h.meter, (ctx) => ctx.get('x-project') || undefined)
    for (let i = 0; i < 12; i++) {
      await request(app)
        .get('/')
        .set('x-customer-id', 'pro-customer')
        .set('x-project', i % 3 === 0 ? 'alpha' : 'beta')
      await request(app).get('/').set('x-customer-id', 'free-customer')
    }
    h.emu.resetRequestCounts()
    await h.meter.flush()
    assert.equal(h.emu.requestCounts()['reportUsage'], 3)
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', bucket: 'alpha' }), 4)
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', bucket: 'beta' }), 8)
    assert.equal(h.emu.recordedUsage({ customerId: 'free-customer', bucket: null }), 12)
  })

  it('flushes in the background every flushIntervalMs, never on the request path', async () => {
    // An interval long enough that five requests never straddle a pass, even on a busy machine.
    const meter = createMeter({ ...h.options, reporting: { flushIntervalMs: 1_500 } })
    const app = metered(meter)
    for (let i = 0; i < 5; i++) await request(app).get('/').set('x-customer-id', 'pro-customer').expect(200)
    assert.equal(h.emu.requestCounts()['reportUsage'] ?? 0, 0)
    const recorded = () => h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' })
    for (let i = 0; i < 100 && recorded() < 5; i++) await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(recorded(), 5)
    assert.equal(h.emu.requestCounts()['reportUsage'], 1, 'one POST for the five requests')
    await meter.close()
  })

  it('keeps failed reports pending and delivers them exactly once on a later flush', async () => {
    const app = metered()
    for (let i = 0; i < 3; i++) await request(app).get('/').set('x-customer-id', 'pro-customer').expect(200)
    const port = Number(new URL(h.emu.url).port)
    await h.emu.close()
    await assert.rejects(h.meter.flush(), { code: 'FLUSH_INCOMPLETE' })
    await request(app).get('/').set('x-customer-id', 'pro-customer').expect(200) // warm cache, Planship down

    h.emu = await startEmulator({ port })
    await h.meter.flush()

    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 4)
    assert.equal(h.emu.meteringRecords().length, 1, 'retried units merge with newer ones of the same key')
  })

  it('drops a report Planship rejects for good (404 unknown customer) with an error log, without blocking others', async () => {
    const meter = createMeter({ ...h.options, failMode: 'open' })
    const app = metered(meter)
    await h.emu.close().then(async () => {
      // Admitted fail-open while Planship was down; the customer does not exist in Planship.
      await request(app).get('/').set('x-customer-id', 'ghost@example.com').expect(200)
      await request(app).get('/').set('x-customer-id', 'pro-customer').expect(200)
    })
    h.emu = await startEmulator({ port: Number(new URL(h.options.planship.baseUrl ?? '').port) })
    const error = await meter.flush().catch((e: unknown) => e)
    assert.ok(error instanceof PlanshipMeterError)
    assert.equal(error.code, 'FLUSH_INCOMPLETE')
    const result = error.detail as FlushResult
    assert.equal(result.rejectedUnits, 1)
    assert.equal(result.rejected[0]?.customerId, 'ghost@example.com')
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 1)
    // One line for the pass, naming the refused report.
    const lines = h.logger.lines.filter((line) => line.startsWith('error reporting usage: 1 of 2 reports failed'))
    assert.equal(lines.length, 1)
    assert.match(lines[0]!, /ghost@example\.com/)
    await meter.close()
  })

  it('close() sends everything pending and leaves nothing running: the process exits by itself', async function () {
    this.timeout(20_000)
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/close-then-exit.ts'], { stdio: 'pipe' })
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    const exited = once(child, 'exit')
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    const [code, signal] = await exited
    clearTimeout(timer)
    assert.equal(signal, null, `the process had to be killed: something kept it alive\n${output}`)
    assert.equal(code, 0, output)
    assert.deepEqual(JSON.parse(output), { undelivered: [], recorded: 7 })
  })

  it('keeps usage pending while Planship refuses the credentials, and delivers it once they work', async () => {
    let credentialsWork = false
    const flaky: typeof fetch = (input, init) =>
      !credentialsWork && String(input).endsWith('/auth/token')
        ? Promise.resolve(Response.json({ detail: 'Invalid credentials' }, { status: 401 }))
        : fetch(input, init)
    const meter = createMeter({ ...h.options, fetch: flaky })
    const app = metered(meter)
    for (let i = 0; i < 7; i++) await request(app).get('/').set('x-customer-id', 'pro-customer').expect(200) // fail-open
    await assert.rejects(meter.flush(), { code: 'FLUSH_INCOMPLETE' })
    credentialsWork = true
    await meter.flush()
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 7)
    await meter.close()
  })

  it('never lets flush() or close() resolve while an earlier pass still has reports in flight', async () => {
    const meter = createMeter({ ...h.options, reporting: { flushIntervalMs: 20, closeTimeoutMs: 5_000 } })
    const app = metered(meter)
    h.emu.setLatency(150)
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 2; i++) await request(app).get('/').set('x-customer-id', 'pro-customer').expect(200)
      await new Promise((resolve) => setTimeout(resolve, 30)) // a background pass is now in flight
      void meter.flush().catch(() => {})
    }
    const { undelivered } = await meter.close()
    assert.deepEqual(undelivered, [])
    assert.equal(h.emu.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }), 6)
  })

  it('rejects flush() after close()', async () => {
    const meter = createMeter(h.options)
    await meter.close()
    await assert.rejects(meter.flush(), { code: 'METER_CLOSED' })
  })

  it('never logs the client secret or an access token', async () => {
    const meter = createMeter({ ...h.options, planship: { ...h.options.planship, clientSecret: 'not-the-secret' } })
    const app = metered(meter)
    await request(app).get('/').set('x-customer-id', 'pro-customer')
    await meter.close()
    await request(metered()).get('/').set('x-customer-id', 'pro-customer')
    await h.meter.flush()
    const logged = h.logger.lines.join('\n')
    assert.doesNotMatch(logged, /not-the-secret|demo-client-secret/)
    assert.doesNotMatch(logged, /Bearer/)
  })
})
