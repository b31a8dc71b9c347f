/**
 * Fault-injection soak (bounded, ~15 s): thousands of requests across many customers while the
 * emulator fails a third of report calls, applies some and then fails them (the ambiguous case),
 * adds latency, revokes every token mid-run and is down (503 on every route) for a few seconds.
 * After close(), Planship holds exactly the admitted usage, plus exactly the units the library
 * reported as possibly duplicated.
 */
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import Koa from 'koa'
import { startEmulator } from '../src/emulator/index.js'
import { createMeter, type MeterEvent, type PlanshipState } from '../src/index.js'

const CUSTOMERS = 40
const WORKERS = 16
const RUN_MS = 8_000
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('soak: usage survives faults', () => {
  it('delivers every admitted unit, and over-delivers exactly what it reports as possibly duplicated', async function () {
    this.timeout(60_000)
    const emu = await startEmulator({
      faults: {
        seed: 42,
        rules: [
          { route: '*', kind: 'latency', latencyMs: 5 },
          { route: 'reportUsage', kind: 'error', rate: 0.33, status: 503 },
          { route: 'reportUsage', kind: 'apply-then-fail', rate: 0.05, status: 500 },
          { route: 'reportUsage', kind: 'apply-then-fail', rate: 0.03, mode: 'reset' },
        ],
      },
    })
    const customers = Array.from({ length: CUSTOMERS }, (_, i) => `soak-${i}@example.com`)
    for (const customer of customers) emu.createCustomer(customer, 'pro')
    const events: MeterEvent[] = []
    const meter = createMeter({
      productSlug: emu.productSlug,
      planship: { baseUrl: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret, timeoutMs: 5_000 },
      identify: (ctx) => ctx.get('x-customer-id') || undefined,
      cache: { ttlMs: 500 },
      reporting: { flushIntervalMs: 100, closeTimeoutMs: 30_000 },
      logger: {},
      onEvent: (event) => events.push(event),
    })
    const app = new Koa<PlanshipState>()
    app.use(meter.consume('api-call', { cost: (ctx) => Number(ctx.get('x-cost') || 1) }))
    app.use((ctx) => {
      ctx.body = { ok: true }
    })
    const server = app.listen(0, '127.0.0.1')
    await new Promise((resolve) => server.once('listening', resolve))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`

    const admitted = new Map<string, number>()
    let requests = 0
    let statuses: Record<number, number> = {}
    const deadline = performance.now() + RUN_MS
    const worker = async (id: number) => {
      for (let n = id; performance.now() < deadline; n += WORKERS) {
        const customer = customers[n % CUSTOMERS]!
        const cost = 1 + (n % 3)
        const res = await fetch(url, { headers: { 'x-customer-id': customer, 'x-cost': String(cost) } })
        await res.arrayBuffer()
        requests++
        statuses = { ...statuses, [res.status]: (statuses[res.status] ?? 0) + 1 }
        if (res.status === 200) admitted.set(customer, (admitted.get(customer) ?? 0) + cost)
      }
    }
    const outage = (async () => {
      await sleep(2_000)
      emu.revokeTokens()
      await sleep(2_000)
      const before = meter.planshipCalls()
      const downAt = performance.now()
      emu.setFaults({ rules: [{ route: '*', kind: 'error', status: 503 }] }) // Planship down
      await sleep(3_000)
      const after = meter.planshipCalls()
      // Rates over the time that passed: a loaded machine sleeps longer than asked.
      const downS = (performance.now() - downAt) / 1000
      emu.setFaults({
        seed: 43,
        rules: [{ route: 'reportUsage', kind: 'error', rate: 0.33, status: 503 }],
      })
      const reads = (c: typeof before) => c.token + c.entitlements + c.meteringIdUsage + c.leverUsage
      return {
        readsPerSecond: (reads(after) - reads(before)) / downS,
        reportsPerSecond: (after.reportUsage - before.reportUsage) / downS,
      }
    })()
    await Promise.all(Array.from({ length: WORKERS }, (_, id) => worker(id)))
    const duringOutage = await outage

    server.close()
    const faults = emu.faultCounts()
    emu.clearFaults()
    const { undelivered } = await meter.close()
    const stats = meter.deliveryStats()
    let admittedTotal = 0
    let recordedTotal = 0
    for (const customer of customers) {
      const units = admitted.get(customer) ?? 0
      const recorded = emu.recordedUsage({ customerId: customer, meteringId: 'api-call' })
      assert.ok(recorded >= units, `${customer}: recorded ${recorded} < admitted ${units}: usage was lost`)
      admittedTotal += units
      recordedTotal += recorded
    }
    const summary = {
      requests,
      statuses,
      admittedUnits: admittedTotal,
      recordedUnits: recordedTotal,
      reportPosts: emu.requestCounts()['reportUsage'],
      retries: stats.retries,
      possiblyDuplicatedUnits: stats.possiblyDuplicatedUnits,
      faults,
      outageReadsPerSecond: duringOutage.readsPerSecond,
      outageReportsPerSecond: duringOutage.reportsPerSecond,
    }
    console.log(`      soak: ${JSON.stringify(summary)}`)
    await emu.close()

    assert.deepEqual(undelivered, [])
    assert.ok(requests > 1_000, `only ${requests} requests`)
    assert.equal(recordedTotal - admittedTotal, stats.possiblyDuplicatedUnits)
    assert.ok(stats.possiblyDuplicatedUnits > 0, 'the ambiguous case happened')
    // 40 customers on a 500 ms cache would refresh 80 times a second; the breaker sends one probe
    // per backoff (measured 1–3 reads/s; 5.3 once on a loaded machine).
    assert.ok(duringOutage.readsPerSecond <= 8, `${duringOutage.readsPerSecond} reads/s during the outage`)
    assert.ok(events.some((event) => event.type === 'retry'))
  })
})
