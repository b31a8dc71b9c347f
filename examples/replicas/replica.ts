/**
 * One replica of the demo API: the same app as `examples/koa-api`, with its reservations and
 * pending usage in Redis. Configured by the environment: PORT, REDIS_URL and the Planship
 * connection (PLANSHIP_BASE_URL, PLANSHIP_CLIENT_ID, PLANSHIP_CLIENT_SECRET, PLANSHIP_PRODUCT_SLUG).
 */
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import { RedisUsageStore } from '../../src/redis/index.js'
import { createDemoApp } from '../koa-api/app.js'

const redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379', {
  // Recommended with the store: a down Redis fails fast (decisions go local) and nothing that
  // timed out is sent again behind the store's back after a reconnect.
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false,
})
redis.on('error', () => {}) // the store logs one line per change of state; ioredis would log every retry
await new Promise((resolve) => redis.once('ready', resolve))

const { app, meter } = createDemoApp({
  productSlug: process.env['PLANSHIP_PRODUCT_SLUG'] ?? 'acme-api',
  planship: {
    baseUrl: process.env['PLANSHIP_BASE_URL'],
    clientId: process.env['PLANSHIP_CLIENT_ID'] ?? '',
    clientSecret: process.env['PLANSHIP_CLIENT_SECRET'] ?? '',
  },
  store: new RedisUsageStore({
    client: redis,
    keyPrefix: process.env['KEY_PREFIX'] ?? 'planship-meter:',
    // Past this, a decision is taken from this process's memory alone. Defaults to 50 ms.
    commandTimeoutMs: Number(process.env['REDIS_COMMAND_TIMEOUT_MS'] ?? 50),
  }),
})
const server = app.listen(Number(process.env['PORT'] ?? 0), '127.0.0.1', () => {
  const port = (server.address() as AddressInfo).port
  process.send?.({ port })
  if (process.send === undefined) console.log(`replica ${process.pid} on http://127.0.0.1:${port}`)
})

async function shutdown(): Promise<void> {
  server.close()
  server.closeAllConnections()
  await meter.close() // flushes what it can; the rest stays in Redis for the other replicas
  await redis.quit() // the meter never closes a client it was given
  process.exit(0)
}
process.once('SIGINT', () => void shutdown())
process.once('SIGTERM', () => void shutdown())
