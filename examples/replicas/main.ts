/**
 * `npm run example:replicas`: the Planship emulator, Redis (the one on REDIS_URL or
 * 127.0.0.1:6379, else a throwaway redis-server) and three replicas of the demo API, behind a
 * round-robin client: one free customer has 100 api-calls, and the three replicas together
 * admit exactly 100 of 150 searches.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { startEmulator } from '../../src/emulator/index.js'

const REPLICA = fileURLToPath(new URL('./replica.ts', import.meta.url))

/** The running Redis, or one of our own without persistence on a spare port. */
async function redisUrl(): Promise<{ url: string; own?: ChildProcess }> {
  const url = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379'
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
  probe.on('error', () => {})
  try {
    await probe.connect()
    await probe.ping()
    return { url }
  } catch {
    const port = 16_379 + Math.floor(Math.random() * 1_000)
    const own = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    await new Promise((resolve) => setTimeout(resolve, 300))
    return { url: `redis://127.0.0.1:${port}`, own }
  } finally {
    probe.disconnect()
  }
}

const emulator = await startEmulator()
const redis = await redisUrl()
const keyPrefix = `planship-meter-example:${randomBytes(3).toString('hex')}:`
console.log(`Planship emulator on ${emulator.url}, Redis on ${redis.url} (keys under ${keyPrefix})`)

const replicas = await Promise.all(
  [0, 1, 2].map(async () => {
    const child = fork(REPLICA, [], {
      execArgv: ['--import', 'tsx'],
      env: {
        ...process.env,
        PORT: '0',
        REDIS_URL: redis.url,
        KEY_PREFIX: keyPrefix,
        PLANSHIP_BASE_URL: emulator.url,
        PLANSHIP_CLIENT_ID: emulator.clientId,
        PLANSHIP_CLIENT_SECRET: emulator.clientSecret,
        PLANSHIP_PRODUCT_SLUG: emulator.productSlug,
      },
    })
    const [{ port }] = (await once(child, 'message')) as [{ port: number }]
    return { child, url: `http://127.0.0.1:${port}` }
  }),
)
console.log(`3 replicas: ${replicas.map((r) => r.url).join(', ')}`)

// free-customer has 100 api-calls. 150 searches, 16 at a time, round-robin over the replicas.
const admitted = [0, 0, 0]
let denied = 0
let next = 0
await Promise.all(
  Array.from({ length: 16 }, async () => {
    while (next < 150) {
      const i = next++ % 3
      const response = await fetch(`${replicas[i]!.url}/v1/search?q=redis`, {
        headers: { 'x-customer-id': 'free-customer' },
      })
      await response.arrayBuffer()
      if (response.status === 200) admitted[i]!++
      else denied++
    }
  }),
)
const total = admitted.reduce((sum, n) => sum + n, 0)
console.log(`admitted ${total} (per replica: ${admitted.join(' + ')}), denied ${denied} with 429`)

// Each replica flushes on SIGTERM; any of them could have sent the others' usage.
await Promise.all(
  replicas.map(async ({ child }) => {
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    await exited
  }),
)
console.log(
  `Planship recorded ${emulator.recordedUsage({ customerId: 'free-customer', meteringId: 'api-call' })} api-calls`,
)

const admin = new Redis(redis.url)
const keys = await admin.keys(`${keyPrefix}*`)
if (keys.length > 0) await admin.del(...keys)
admin.disconnect()
redis.own?.kill()
await emulator.close()
