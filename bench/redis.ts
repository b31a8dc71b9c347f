/**
 * `npm run bench:redis`: the meter with its in-memory store against the meter with the Redis
 * store, on warm customers with ample allowance. Per server: throughput, p99, the server's CPU
 * per request, and for Redis its round trips (INFO commandstats) and its own CPU per request.
 * Uses the Redis at REDIS_URL (default 127.0.0.1:6379) under a key prefix of its own.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { Redis } from 'ioredis'
import type { PlanshipTarget } from './servers/index.js'
import { ask, type Message, stop } from './ipc.js'

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    duration: { type: 'string' },
    connections: { type: 'string' },
    customers: { type: 'string' },
  },
})
const smoke = values.smoke === true
const durationS = Number(values.duration ?? (smoke ? 2 : 5))
const connections = Number(values.connections ?? (smoke ? 8 : 32))
const customers = Number(values.customers ?? 100)
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

function start(script: string, args: string[], env: Record<string, string> = {}) {
  const child = fork(new URL(script, import.meta.url), args, {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, ...env },
  })
  return new Promise<{ child: ChildProcess; ready: Message }>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)))
    child.once('message', (ready: Message) => resolve({ child, ready }))
  })
}

function load(port: number, opts: { durationS?: number; amount?: number }) {
  let next = 0
  return autocannon({
    url: `http://127.0.0.1:${port}/v1/widgets`,
    connections,
    ...(opts.amount === undefined ? { duration: opts.durationS ?? durationS } : { amount: opts.amount }),
    requests: [
      {
        setupRequest: (request) => ({
          ...request,
          headers: { ...request.headers, 'x-customer-id': `bench-${next++ % customers}` },
        }),
      },
    ],
  })
}

/** What our scripts call inside Redis: counted by commandstats, but no round trip of their own. */
const IN_SCRIPTS = new Set(['time', 'get', 'set', 'del', 'pexpire', 'zscore', 'info'])

/**
 * Commands the clients sent (a pipeline of n counts n; a script counts once) and scripts among
 * them, and Redis's CPU in µs.
 */
async function redisCounters(admin: Redis): Promise<{ calls: number; scripts: number; cpuUs: number }> {
  const stats = await admin.info('commandstats')
  let calls = 0
  let scripts = 0
  for (const match of stats.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) {
    if (!IN_SCRIPTS.has(match[1]!)) calls += Number(match[2])
    if (match[1] === 'evalsha' || match[1] === 'eval') scripts += Number(match[2])
  }
  const cpu = await admin.info('cpu')
  const read = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0)
  return { calls, scripts, cpuUs: (read('used_cpu_sys') + read('used_cpu_user')) * 1e6 }
}

const admin = new Redis(redisUrl)
const emulator = await start('./emulator-process.ts', [], {
  BENCH_CUSTOMERS: String(customers),
  BENCH_LATENCY_MS: '20',
})
const target = emulator.ready as unknown as PlanshipTarget
const rows: string[] = []
for (const kind of ['memory', 'redis', 'redis-lease']) {
  const keyPrefix = `planship-meter-bench:${randomBytes(4).toString('hex')}:`
  const server = await start('./redis-server.ts', [kind, JSON.stringify(target), redisUrl, keyPrefix])
  const port = server.ready['port'] as number
  await load(port, { amount: Math.max(customers, connections) }) // every customer at least once: caches are warm
  await load(port, { durationS: 1 })
  await new Promise((resolve) => setTimeout(resolve, 1_200))
  const cpuBefore = (await ask(server.child, { type: 'stats' }))['cpuUs'] as number
  const redisBefore = await redisCounters(admin)
  const result = await load(port, {})
  await new Promise((resolve) => setTimeout(resolve, 1_200)) // the run's last flush belongs to it
  const after = await ask(server.child, { type: 'stats' })
  const cpuAfter = after['cpuUs'] as number
  if (after['mode'] === 'local') console.error(`${kind}: Redis missed its deadline, decisions went local`)
  const redisAfter = await redisCounters(admin)
  const n = result.requests.total
  const per1000 = (count: number) => (kind !== 'memory' ? ((count * 1000) / n).toFixed(0) : '0')
  const trips = `${per1000(redisAfter.calls - redisBefore.calls)} (${per1000(redisAfter.scripts - redisBefore.scripts)} scripts)`
  const redisCpu = kind !== 'memory' ? ((redisAfter.cpuUs - redisBefore.cpuUs) / n).toFixed(1) : '–'
  rows.push(
    `| ${kind} | ${result.requests.average.toFixed(0)} | ${result.latency.p50} | ${result.latency.p99} | ` +
      `${((cpuAfter - cpuBefore) / n).toFixed(1)} | ${trips} | ${redisCpu} | ${n} | ${result.non2xx} | ${result.errors} |`,
  )
  await stop(server.child)
  // Leave nothing behind in the shared Redis.
  const keys = await admin.keys(`${keyPrefix}*`)
  if (keys.length > 0) await admin.del(...keys)
}
await stop(emulator.child)
admin.disconnect()

console.log(`\nplanship-meter Redis store benchmark${smoke ? ' (smoke: numbers are not meaningful)' : ''}`)
console.log(
  `${os.cpus().length} cores, Node ${process.version}, ${connections} connections, ${durationS} s per store, ` +
    `${customers} warm customers in rotation, emulator latency 20 ms, Redis on the same machine\n`,
)
console.log(
  '| store | req/s | p50 ms | p99 ms | app CPU µs/req | Redis commands (scripts) /1 000 req | Redis CPU µs/req | requests | non-2xx | errors |',
)
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
for (const row of rows) console.log(row)
