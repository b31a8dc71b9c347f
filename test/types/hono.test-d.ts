/**
 * Compile-only: `npm run typecheck` checks this file (mocha never runs it). The Hono meter's
 * middleware carries `{ Variables: PlanshipVariables }`, so handlers after it are typed.
 */
import { Hono } from 'hono'
import { createMeter, type HonoMeter, type PlanshipVariables } from '../../src/hono/index.js'
import type { PlanshipRequestState } from '../../src/index.js'

declare const meter: HonoMeter

// After consume / requireFeature in a route's chain: c.get('planship') and c.var.planship are typed.
const app = new Hono()
app.post('/v1/renders', meter.consume('render', { cost: (c) => Number(c.req.query('n') ?? 1) }), (c) => {
  const state: PlanshipRequestState = c.get('planship')
  const customerId: string | undefined = c.var.planship.customerId
  // @ts-expect-error the customer id may be undefined (no customer identified)
  const id: string = c.var.planship.customerId
  void id
  return c.json({ customerId, decisions: state.decisions.length })
})
app.get('/v1/export.csv', meter.requireFeature('csv-export'), (c) => c.text(c.var.planship.customerId ?? 'nobody'))

// After app.use(meter.middleware()) on a chained app, every handler sees it.
const chained = new Hono().use(meter.middleware())
chained.get('/whoami', (c) => c.json({ customer: c.get('planship').customerId }))

// Or declared on the app, with variables of its own.
const declared = new Hono<{ Variables: PlanshipVariables & { user: string } }>()
declared.get('/me', (c) => c.text(`${c.var.user}: ${c.var.planship.customerId ?? '-'}`))

// @ts-expect-error a cost is a number or a function of c, not a string
meter.consume('render', { cost: '1' })
// @ts-expect-error Hono callbacks get c alone
meter.consume('render', { usage: (_c, res: { statusCode: number }) => res.statusCode })

createMeter({
  productSlug: 'acme-api',
  planship: { clientId: 'id', clientSecret: 'secret' },
  identify: (c) => c.req.header('x-customer-id'),
  onDenied: (c, denial) => c.text(denial.message),
  headers: 'legacy',
  mode: 'shadow',
})
createMeter({
  productSlug: 'acme-api',
  planship: { clientId: 'id', clientSecret: 'secret' },
  identify: (c) => c.req.header('x-customer-id'),
  // @ts-expect-error Hono's onDenied returns the Response to send
  onDenied: (c, denial) => {
    c.status(403)
    void denial
  },
})
