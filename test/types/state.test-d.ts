/**
 * Compile-only: `npm run typecheck` checks this file (mocha never runs it). Each
 * `@ts-expect-error` proves a misuse fails to compile; the rest proves the state is typed.
 */
import Router from '@koa/router'
import express from 'express'
import Koa from 'koa'
import { createMeter as createExpressMeter, type ExpressMeter } from '../../src/express/index.js'
import type { Meter, PlanshipRequestState } from '../../src/index.js'

declare const meter: Meter
declare const expressMeter: ExpressMeter

// Koa: after app.use(meter.middleware()) on a new Koa(), ctx.state.planship is typed and defined.
const app = new Koa().use(meter.middleware())
app.use((ctx) => {
  const state: PlanshipRequestState = ctx.state.planship
  const customerId: string | undefined = ctx.state.planship.customerId
  ctx.body = { customerId, decisions: state.decisions.length }
  // @ts-expect-error the customer id may be undefined (no customer identified)
  const id: string = ctx.state.planship.customerId
  // @ts-expect-error decisions hold records, not strings
  ctx.state.planship.decisions.push('allowed')
  void id
})

// Koa: in a router chain after consume / requireFeature.
const router = new Router()
router.post('/v1/renders', meter.consume('render', { cost: (ctx) => Number(ctx.query['n'] ?? 1) }), (ctx) => {
  const decided: boolean | undefined = ctx.state.planship.decisions[0]?.allowed
  ctx.body = { decided, customer: ctx.state.planship.customerId }
  // @ts-expect-error planship is no number
  const n: number = ctx.state.planship
  void n
})
router.get('/v1/export.csv', meter.requireFeature('csv-export'), (ctx) => {
  ctx.body = ctx.state.planship.customerId ?? 'nobody'
})
// @ts-expect-error a cost is a number or a function of ctx, not a string
meter.consume('render', { cost: '1' })
// @ts-expect-error Koa callbacks get ctx: there is no res
meter.consume('render', { usage: (_ctx: Koa.Context, res: express.Response) => res.statusCode })
// @ts-expect-error mode is 'enforce' or 'shadow'
meter.requireFeature('csv-export', { mode: 'off' })

// Express: res.locals.planship is typed, and defined after consume / requireFeature in a chain.
const api = express()
api.use(expressMeter.middleware())
api.post(
  '/v1/renders',
  expressMeter.consume('render', { usage: (_req, res) => Number(res.get('x-rows')) }),
  (_req, res) => {
    const state: PlanshipRequestState = res.locals.planship
    const customerId: string | undefined = state.customerId
    res.json({ customerId })
  },
)
api.get('/v1/status', (_req, res) => {
  // Outside such a chain it is typed, and may be missing.
  const customerId: string | undefined = res.locals.planship?.customerId
  // @ts-expect-error possibly undefined outside a metered chain
  const state: PlanshipRequestState = res.locals.planship
  res.json({ customerId, state })
})
// @ts-expect-error Express callbacks get (req, res): there is no ctx.state
expressMeter.consume('render', { bucket: (req) => req.state.project })

createExpressMeter({
  productSlug: 'acme-api',
  planship: { clientId: 'id', clientSecret: 'secret' },
  identify: (req) => req.get('x-customer-id'),
  onDenied: (_req, res, denial) => {
    res.status(denial.status).send(denial.message)
  },
  headers: 'legacy',
  mode: 'shadow',
})
createExpressMeter({
  productSlug: 'acme-api',
  planship: { clientId: 'id', clientSecret: 'secret' },
  // @ts-expect-error identify gets (req, res), not a Koa ctx
  identify: (ctx: Koa.Context) => ctx.get('x-customer-id'),
  // @ts-expect-error headers is 'draft', 'legacy' or false
  headers: true,
})
