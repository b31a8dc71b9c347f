import assert from 'node:assert/strict'
import Router from '@koa/router'
import { getRequestListener } from '@hono/node-server'
import express from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
import Koa from 'koa'
import request from 'supertest'
import { Planship } from '@planship/fetch'
import { createMeter, type ReserveDecision } from '../../src/index.js'
import { startExpressHarness } from '../helpers/express.js'
import { startFastifyHarness } from '../helpers/fastify.js'
import { startHonoHarness } from '../helpers/hono.js'
import { eachHarness, eventually, manualClock, startHarness } from '../helpers/harness.js'

/** A deterministic PRNG (mulberry32): the property test replays the same traffic on every run. */
function prng(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

describe('status()', () => {
  const harness = eachHarness(() => startHarness())

  it('answers each lever as admission sees it: used counts reserved and pending units, nothing is consumed', async () => {
    const { meter, emu } = harness()
    const calls = emu.createCustomer('dash@example.com', 'free')
    assert.ok(calls.id)
    for (let i = 0; i < 30; i++) {
      const d = await meter.reserve('dash@example.com', 'api-call')
      assert.ok(d.allowed)
      await d.commit()
    }
    const running = await meter.reserve('dash@example.com', 'api-call', { cost: 7 })
    assert.ok(running.allowed)
    const exported = await meter.reserve('dash@example.com', 'export', { bucket: 'alpha', cost: 2 })
    assert.ok(exported.allowed)
    await exported.commit()

    emu.resetRequestCounts()
    const status = await meter.status('dash@example.com')
    assert.equal(status.customerId, 'dash@example.com')
    assert.equal(status.source, 'fresh')
    const apiCalls = status.levers['api-calls']
    assert.deepEqual(
      { ...apiCalls, resetsAt: undefined },
      {
        kind: 'metered',
        limit: 100,
        used: 37,
        remaining: 63,
        resetsAt: undefined,
      },
    )
    assert.ok(apiCalls?.kind === 'metered' && typeof apiCalls.resetsAt === 'string', 'the renewal is known')
    assert.deepEqual(status.levers['csv-export'], { kind: 'feature', entitled: false, value: false })
    assert.deepEqual(status.levers['max-projects'], { kind: 'feature', entitled: true, value: 3 })
    const perProject = status.levers['exports-per-project']
    assert.ok(perProject?.kind === 'metered')
    assert.deepEqual([perProject.limit, perProject.used, perProject.remaining], [10, 0, 10], 'a bucket not used yet')
    assert.deepEqual(perProject.buckets, { alpha: { limit: 10, used: 2, remaining: 8 } })
    const renders = status.levers['renders-per-minute']
    assert.ok(renders?.kind === 'metered' && renders.windowSeconds === 60)

    // A second look, warm: no network call, and still nothing consumed.
    emu.resetRequestCounts()
    const again = await meter.status('dash@example.com')
    const withoutWindow = (s: typeof status) =>
      JSON.stringify(s, (key, value: unknown) => (key === 'renders-per-minute' ? undefined : value))
    assert.equal(withoutWindow(again), withoutWindow(status), 'a rolling window moves on; the rest is the same')
    assert.deepEqual(emu.requestCounts(), {})
    await running.release()
    assert.equal((await meter.status('dash@example.com')).levers['api-calls']?.kind, 'metered')
    const after = (await meter.status('dash@example.com')).levers['api-calls']
    assert.ok(after?.kind === 'metered' && after.remaining === 70 && after.used === 30)
  })

  it('reads the usage of every metering id at once: a slow Planship delays a status by one read, not one per lever', async () => {
    const h = harness()
    const meter = createMeter({ ...h.options, planship: { ...h.options.planship, timeoutMs: 3_000 } })
    try {
      await meter.status('free-customer') // the product's catalog cached
      const before = h.emu.requestCounts()['meteringIdUsage'] ?? 0
      h.emu.setFaults({ rules: [{ route: 'meteringIdUsage', kind: 'hang' }] })
      const status = meter.status('pro-customer') // three metering ids, none of their usage cached
      // One at a time, the second read would start only once the first gave up, at 3 s.
      const reads = () => (h.emu.requestCounts()['meteringIdUsage'] ?? 0) - before
      await eventually(() => reads() === 3, 'three reads at once', 2_500)
      const { levers } = await status // from the entitlements, the usage reads having given up
      assert.deepEqual(Object.keys(levers), [
        'api-calls',
        'renders-per-minute',
        'csv-export',
        'max-projects',
        'exports-per-project',
      ])
      const calls = levers['api-calls']
      assert.ok(calls?.kind === 'metered' && calls.limit === 10_000, JSON.stringify(calls))
    } finally {
      h.emu.clearFaults()
      await meter.close()
    }
  })

  it('says unlimited as null, and throws a TypeError for an id that cannot be sent, as reserve() does', async () => {
    const { meter } = harness()
    const pro = await meter.status('pro-customer')
    const projects = pro.levers['max-projects']
    assert.deepEqual(projects, { kind: 'feature', entitled: true, value: -1 })
    await assert.rejects(meter.status(''), TypeError)
    const unknown = await meter.status('nobody-at-all')
    assert.deepEqual(unknown.levers, {})
  })

  it('remaining is the largest cost reserve() admits, after random reserves, commits, releases and flushes', async function () {
    this.timeout(20_000)
    const { meter, emu } = harness()
    emu.createCustomer('prop@example.com', 'free')
    const next = prng(17)
    const open: Extract<ReserveDecision, { allowed: true }>[] = []
    /** The largest cost admitted now, found by trying (each try released at once). */
    async function largestAdmitted(): Promise<number> {
      let low = 0
      let high = 100
      while (low < high) {
        const mid = Math.ceil((low + high) / 2)
        const d = await meter.reserve('prop@example.com', 'api-call', { cost: mid })
        if (d.allowed) {
          await d.release()
          low = mid
        } else high = mid - 1
      }
      return low
    }
    for (let round = 0; round < 25; round++) {
      const steps = 1 + Math.floor(next() * 6)
      for (let i = 0; i < steps; i++) {
        const roll = next()
        if (roll < 0.5 || open.length === 0) {
          const d = await meter.reserve('prop@example.com', 'api-call', { cost: 1 + Math.floor(next() * 4) })
          if (d.allowed) open.push(d)
        } else {
          const d = open.splice(Math.floor(next() * open.length), 1)[0]!
          if (roll < 0.8) await d.commit(Math.floor(next() * (d.reserved + 1)))
          else await d.release()
        }
      }
      if (next() < 0.3) await meter.flush()
      const status = await meter.status('prop@example.com')
      const lever = status.levers['api-calls']
      assert.ok(lever?.kind === 'metered')
      assert.equal(lever.remaining, await largestAdmitted(), `round ${round}`)
      assert.equal(lever.used + lever.remaining!, 100, `round ${round}: used and remaining make the limit`)
    }
    for (const d of open) await d.release()
  })
})

describe('statusRoute()', () => {
  it('Koa: 200 with the identified customer’s status, never metered; 401 without a customer', async () => {
    // A clock that stands still: a rolling window's resetsAt is "a window from now".
    const h = await startHarness({ meter: { clock: manualClock() } })
    try {
      const router = new Router()
      router.get('/v1/usage', h.meter.statusRoute())
      router.post('/v1/calls', h.meter.consume('api-call'), (ctx) => {
        ctx.body = {}
      })
      const app = new Koa()
      app.use(h.meter.middleware())
      app.use(router.routes())
      const server = app.callback()
      await request(server).post('/v1/calls').set('x-customer-id', 'free-customer').expect(200)
      for (let i = 0; i < 3; i++) {
        const res = await request(server).get('/v1/usage').set('x-customer-id', 'free-customer').expect(200)
        assert.equal(res.headers['cache-control'], 'private, no-store')
        assert.equal(res.body.customerId, 'free-customer')
        assert.deepEqual([res.body.levers['api-calls'].used, res.body.levers['api-calls'].remaining], [1, 99])
        // Exactly the identified customer's status(): nothing of another customer.
        assert.deepEqual(res.body, JSON.parse(JSON.stringify(await h.meter.status('free-customer'))))
      }
      const denied = await request(server).get('/v1/usage').expect(401)
      assert.equal(denied.body.error.code, 'customer_unidentified')
      const hostile = await request(server).get('/v1/usage').set('x-customer-id', '..').expect(401)
      assert.equal(hostile.body.error.code, 'customer_unidentified')
      await h.meter.flush()
      assert.equal(h.emu.recordedUsage({ customerId: 'free-customer' }), 1, 'looking is not billed')
    } finally {
      await h.close()
    }
  })

  it('Express: the same answers', async () => {
    const h = await startExpressHarness()
    try {
      const app = express()
      app.use(h.meter.middleware())
      app.get('/v1/usage', h.meter.statusRoute())
      const res = await request(app).get('/v1/usage').set('x-customer-id', 'pro-customer').expect(200)
      assert.equal(res.body.levers['api-calls'].limit, 10000)
      assert.equal(res.body.levers['csv-export'].entitled, true)
      const denied = await request(app).get('/v1/usage').expect(401)
      assert.equal(denied.body.error.code, 'customer_unidentified')
    } finally {
      await h.close()
    }
  })
  it('Fastify: the same answers, from a route handler', async () => {
    const h = await startFastifyHarness({ meter: { clock: manualClock() } }) // resetsAt of a window: from now
    const app = Fastify()
    try {
      await app.register(h.meter.plugin)
      app.get('/v1/usage', h.meter.statusRoute())
      const res = await app.inject({ url: '/v1/usage', headers: { 'x-customer-id': 'pro-customer' } })
      assert.equal(res.statusCode, 200)
      assert.equal(res.headers['cache-control'], 'private, no-store')
      assert.deepEqual(res.json(), JSON.parse(JSON.stringify(await h.meter.status('pro-customer'))))
      const denied = await app.inject({ url: '/v1/usage' })
      assert.deepEqual([denied.statusCode, denied.json().error.code], [401, 'customer_unidentified'])
      const hostile = await app.inject({ url: '/v1/usage', headers: { 'x-customer-id': '..' } })
      assert.equal(hostile.statusCode, 401)
    } finally {
      await app.close()
      await h.close()
    }
  })

  it('Hono: the same answers, from a route handler', async () => {
    const h = await startHonoHarness({ meter: { clock: manualClock() } })
    try {
      const app = new Hono()
      app.get('/v1/usage', h.meter.statusRoute())
      const res = await request(getRequestListener(app.fetch)).get('/v1/usage').set('x-customer-id', 'pro-customer')
      assert.equal(res.status, 200)
      assert.equal(res.headers['cache-control'], 'private, no-store')
      assert.deepEqual(res.body, JSON.parse(JSON.stringify(await h.meter.status('pro-customer'))))
      const denied = await request(getRequestListener(app.fetch)).get('/v1/usage').expect(401)
      assert.equal(denied.body.error.code, 'customer_unidentified')
    } finally {
      await h.close()
    }
  })
})

describe('refresh()', () => {
  it('after a plan change, the next decision uses Planship’s new data, well within the cache ttl', async () => {
    const clock = manualClock()
    const h = await startHarness({ meter: { clock } })
    try {
      const { meter, emu } = h
      emu.createCustomer('upgrader@example.com', 'free')
      const full = await meter.reserve('upgrader@example.com', 'api-call', { cost: 100 })
      assert.ok(full.allowed)
      await full.commit()
      assert.equal((await meter.reserve('upgrader@example.com', 'api-call')).allowed, false)

      // The app changes the plan through Planship's API, as it would in production.
      const planship = new Planship(
        emu.productSlug,
        { clientId: emu.clientId, clientSecret: emu.clientSecret },
        {
          baseUrl: emu.url,
        },
      )
      const [subscription] = await planship.listSubscriptions('upgrader@example.com', emu.productSlug)
      await planship.changeSubscriptionPlan('upgrader@example.com', subscription!.subscriptionId, 'pro')
      assert.equal((await meter.reserve('upgrader@example.com', 'api-call')).allowed, false, 'cached: still free')

      await meter.refresh('upgrader@example.com')
      const next = await meter.reserve('upgrader@example.com', 'api-call')
      assert.ok(next.allowed, 'the upgrade applies on the next decision')
      await next.release()
      const status = await meter.status('upgrader@example.com')
      assert.equal(status.levers['api-calls']?.kind === 'metered' && status.levers['api-calls'].limit, 10_000)
      await assert.rejects(meter.refresh(''), TypeError)
    } finally {
      await h.close()
    }
  })
  it('after a downgrade, usage reported but not yet in Planship’s numbers still counts', async () => {
    // Planship aggregates 10 s late here; the meter allows for 15 s.
    const h = await startHarness({
      emulator: { aggregationLagMs: 10_000 },
      meter: { cache: { aggregationLagMs: 15_000 } },
    })
    try {
      const { meter, emu } = h
      emu.createCustomer('downgrader@example.com', 'pro')
      const used = await meter.reserve('downgrader@example.com', 'api-call', { cost: 10 })
      assert.ok(used.allowed)
      await used.commit()
      await meter.flush() // acknowledged, not in Planship's numbers for 10 s
      const planship = new Planship(
        emu.productSlug,
        { clientId: emu.clientId, clientSecret: emu.clientSecret },
        { baseUrl: emu.url },
      )
      const [subscription] = await planship.listSubscriptions('downgrader@example.com', emu.productSlug)
      await planship.changeSubscriptionPlan('downgrader@example.com', subscription!.subscriptionId, 'free')
      const refreshing = meter.refresh('downgrader@example.com')
      // Free has 100 calls and 10 are used: the fall from 10 000 is the plan's, not usage absorbed,
      // for a decision waiting on the refresh's read as for one after it.
      const during = meter.reserve('downgrader@example.com', 'api-call', { cost: 91 })
      await refreshing
      assert.equal((await during).allowed, false)
      assert.equal((await meter.reserve('downgrader@example.com', 'api-call', { cost: 91 })).allowed, false)
      const rest = await meter.reserve('downgrader@example.com', 'api-call', { cost: 90 })
      assert.ok(rest.allowed)
      await rest.release()
    } finally {
      await h.close()
    }
  })
})
