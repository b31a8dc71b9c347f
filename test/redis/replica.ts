/**
 * One replica of the multi-process tests: a Koa app with the meter on the shared Redis and the
 * test's emulator. Configured by the REPLICA env variable (JSON); says its port over IPC, and
 * answers 'flush' and 'close'.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import Router from '@koa/router'
import { Redis } from 'ioredis'
import Koa from 'koa'
import { createMeter, type MeterEvent, type MeterOptions, type PlanshipState } from '../../src/index.js'
import { RedisUsageStore, type RedisUsageStoreOptions } from '../../src/redis/index.js'

interface ReplicaConfig {
  emulatorUrl: string
  clientId: string
  clientSecret: string
  productSlug: string
  redisUrl: string
  store: Omit<RedisUsageStoreOptions, 'client'>
  meter: Partial<MeterOptions>
}

const config = JSON.parse(process.env.REPLICA ?? '{}') as ReplicaConfig
const client = new Redis(config.redisUrl, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false })
// Serve once connected: before that, decisions would be local (correct, but not shared).
await new Promise((resolve) => client.once('ready', resolve))
/** Threshold alerts this replica sent (GET /thresholds). */
const thresholds: Extract<MeterEvent, { type: 'threshold' }>[] = []
const meter = createMeter({
  productSlug: config.productSlug,
  planship: { baseUrl: config.emulatorUrl, clientId: config.clientId, clientSecret: config.clientSecret },
  identify: (ctx) => ctx.get('x-customer-id') || undefined,
  logger: {
    warn: (message, fields) => console.error(`[replica ${process.pid}] ${message}`, JSON.stringify(fields ?? {})),
    error: (message, fields) => console.error(`[replica ${process.pid}] ${message}`, JSON.stringify(fields ?? {})),
  },
  store: new RedisUsageStore({ client, ...config.store }),
  onEvent: (event) => {
    if (event.type === 'threshold') thresholds.push(event)
  },
  ...config.meter,
})
const app = new Koa<PlanshipState>()
const router = new Router<PlanshipState>()
const ok = (ctx: Koa.Context) => {
  ctx.body = { ok: true, pid: process.pid }
}
router.post('/call', meter.consume('call'), ok)
router.post('/render', meter.consume('render'), ok)
// Holds its reservation until the process is killed; `/holding` says how many do.
let holding = 0
router.post('/slow', meter.consume('call'), async (ctx) => {
  holding++
  await sleep(60_000)
  ok(ctx)
})
router.get('/holding', (ctx) => {
  ctx.body = { holding }
})
// After a plan change: the app tells the meter (one replica; the fleet follows).
router.post('/refresh', async (ctx) => {
  await meter.refresh(ctx.get('x-customer-id'))
  ctx.body = { ok: true }
})
router.get('/thresholds', (ctx) => {
  ctx.body = thresholds
})
router.get('/usage', meter.statusRoute())
app.use(meter.middleware())
app.use(router.routes())
const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address()
  process.send!({ port: typeof address === 'object' && address !== null ? address.port : 0 })
})

process.on('message', (message: string) => {
  if (message === 'flush') {
    meter.flush().then(
      (result) => process.send!({ flushed: result.units, stats: meter.deliveryStats() }),
      (error: unknown) => process.send!({ flushed: -1, error: String(error), stats: meter.deliveryStats() }),
    )
  } else if (message === 'close') {
    server.close()
    void meter.close().then(async () => {
      await client.quit()
      process.exit(0)
    })
  }
})
