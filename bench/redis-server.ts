/**
 * One server of `npm run bench:redis` (argv: store, target JSON, Redis URL, key prefix): the
 * meter on a warm route, with the in-memory store or the Redis store. Answers IPC from redis.ts.
 */
import type { AddressInfo } from 'node:net'
import Router from '@koa/router'
import { Redis } from 'ioredis'
import Koa from 'koa'
import { createMeter } from '../src/index.js'
import { RedisUsageStore } from '../src/redis/index.js'
import type { PlanshipTarget } from './servers/index.js'

const [kind, rawTarget, redisUrl, keyPrefix] = process.argv.slice(2) as [string, string, string, string]
const target = JSON.parse(rawTarget) as PlanshipTarget
const client =
  kind !== 'memory'
    ? new Redis(redisUrl, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false })
    : undefined
if (client !== undefined) await new Promise((resolve) => client.once('ready', resolve))
const store =
  client === undefined
    ? undefined
    : new RedisUsageStore({ client, keyPrefix, leaseUnits: kind === 'redis-lease' ? 256 : 0 })
const meter = createMeter({
  productSlug: target.productSlug,
  planship: { baseUrl: target.url, clientId: target.clientId, clientSecret: target.clientSecret },
  identify: (ctx) => ctx.get('x-customer-id') || undefined,
  logger: {
    warn: (message) => console.error(`[${kind}] ${message}`),
    error: (message) => console.error(`[${kind}] ${message}`),
  },
  ...(store === undefined ? {} : { store }),
})
const app = new Koa()
const router = new Router()
app.use(meter.middleware())
router.get('/v1/widgets', meter.consume('api-call'), (ctx) => {
  ctx.body = { id: 42, name: 'widget', tags: ['a', 'b'] }
})
app.use(router.routes())
const server = app.listen(0, '127.0.0.1', () => {
  process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port })
})
server.keepAliveTimeout = 30_000

process.on('message', async (message: { type: 'stats' | 'close' }) => {
  if (message.type === 'close') {
    server.close()
    server.closeAllConnections()
    await meter.close()
    await client?.quit()
    process.disconnect()
    return
  }
  const cpu = process.cpuUsage()
  process.send?.({ type: 'stats', cpuUs: cpu.user + cpu.system, mode: store?.mode, calls: meter.planshipCalls() })
})
