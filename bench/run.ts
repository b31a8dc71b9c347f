/**
 * `npm run bench`: bare Koa (A) vs planship-meter (B; B' without RateLimit headers) vs the official SDK pattern (C), in one
 * run, each server in its own process, the emulator in another, load from this one.
 * `npm run bench -- --smoke` runs a few seconds of it, without thresholds (CI).
 */
import { type ChildProcess, fork } from 'node:child_process'
import os from 'node:os'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import type { Mode, PlanshipTarget } from './servers.js'

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    /** Writes a CPU profile of each server process to bench/profiles/. */
    profile: { type: 'boolean', default: false },
    duration: { type: 'string' },
    connections: { type: 'string' },
    'latency-ms': { type: 'string' },
    customers: { type: 'string' },
    'memory-customers': { type: 'string' },
  },
})
const smoke = values.smoke === true
const durationS = Number(values.duration ?? (smoke ? 2 : 10))
const connections = Number(values.connections ?? (smoke ? 8 : 32))
const latencyMs = Number(values['latency-ms'] ?? 20)
const customers = Number(values.customers ?? (smoke ? 50 : 1_000))
const memoryCustomers = Number(values['memory-customers'] ?? (smoke ? 1_000 : 100_000))

type Message = { type: string; [key: string]: unknown }

function start(
  script: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; ready: Message }> {
  const child = fork(new URL(script, import.meta.url), args, {
    execArgv: [
      '--import',
      'tsx',
      '--expose-gc',
      ...(values.profile === true && script.includes('server') ? ['--cpu-prof', '--cpu-prof-dir=bench/profiles'] : []),
    ],
    env: { ...process.env, ...env },
  })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)))
    child.once('message', (ready: Message) => resolve({ child, ready }))
  })
}

function ask(child: ChildProcess, message: Message): Promise<Message> {
  return new Promise((resolve) => {
    child.once('message', resolve)
    child.send(message)
  })
}

async function stop(child: ChildProcess): Promise<void> {
  child.removeAllListeners('exit')
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.send({ type: 'close' })
  await exited
}

/** Load with one customer id per request, rotating through `count` ids. */
function load(port: number, prefix: string, count: number, opts: { durationS?: number; amount?: number }) {
  let next = 0
  return autocannon({
    url: `http://127.0.0.1:${port}/v1/widgets`,
    connections,
    ...(opts.amount === undefined ? { duration: opts.durationS ?? durationS } : { amount: opts.amount }),
    requests: [
      {
        setupRequest: (request) => ({
          ...request,
          headers: { ...request.headers, 'x-customer-id': `${prefix}-${next++ % count}` },
        }),
      },
    ],
  })
}

const kinds = {
  token: ['token'],
  entitlements: ['entitlements'],
  'usage fetch': ['meteringIdUsage', 'leverUsage'],
  'report POST': ['reportUsage'],
} as const

interface Row {
  mode: Mode
  rps: number
  p50: number
  p99: number
  requests: number
  /** Seconds over which the upstream calls were counted (the run and its last flush). */
  windowS: number
  /** Server CPU time (user + system) per request, in µs: independent of the load generator's limits. */
  cpuUsPerRequest: number
  non2xx: number
  errors: number
  upstream: Record<keyof typeof kinds, number>
}

const emulator = await start('./emulator-process.ts', [], {
  BENCH_CUSTOMERS: String(customers),
  BENCH_MEMORY_CUSTOMERS: String(memoryCustomers),
  BENCH_LATENCY_MS: String(latencyMs),
})
const target = emulator.ready as unknown as PlanshipTarget
const counts = async () => (await ask(emulator.child, { type: 'counts' }))['counts'] as Record<string, number>

const rows: Row[] = []
let memory: { before: number; after: number; heapAfter: number } | undefined
for (const mode of ['bare', 'meter', 'meter-no-headers', 'official'] as Mode[]) {
  const server = await start('./server-process.ts', [mode, JSON.stringify(target)])
  const port = server.ready['port'] as number
  // Warm up: every customer once (fills B's cache, C's token), then a second of load.
  await load(port, 'bench', customers, { amount: customers })
  await load(port, 'bench', customers, { durationS: 1 })
  await new Promise((resolve) => setTimeout(resolve, 1_200)) // let B's warm-up flush pass
  const before = await counts()
  const cpuBefore = (await ask(server.child, { type: 'stats' }))['cpuUs'] as number
  const windowStart = performance.now()
  const result = await load(port, 'bench', customers, {})
  await new Promise((resolve) => setTimeout(resolve, 1_200)) // the run's last flush belongs to it
  const after = await counts()
  const cpuAfter = (await ask(server.child, { type: 'stats' }))['cpuUs'] as number
  const windowS = (performance.now() - windowStart) / 1000
  const per1000 = (names: readonly string[]) =>
    (names.reduce((sum, name) => sum + (after[name] ?? 0) - (before[name] ?? 0), 0) * 1000) / result.requests.total
  rows.push({
    mode,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    windowS,
    cpuUsPerRequest: (cpuAfter - cpuBefore) / result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    upstream: Object.fromEntries(
      Object.entries(kinds).map(([kind, names]) => [kind, per1000(names)]),
    ) as Row['upstream'],
  })
  if (mode === 'meter') {
    const rssBefore = (await ask(server.child, { type: 'stats', gc: true }))['rss'] as number
    await ask(emulator.child, { type: 'latency', ms: 0 })
    await load(port, 'mem', memoryCustomers, { amount: memoryCustomers })
    await ask(emulator.child, { type: 'latency', ms: latencyMs })
    const stats = await ask(server.child, { type: 'stats', gc: true })
    memory = { before: rssBefore, after: stats['rss'] as number, heapAfter: stats['heapUsed'] as number }
  }
  await stop(server.child)
}
await stop(emulator.child)

const [a, b, bOff, c] = rows as [Row, Row, Row, Row]
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`
const fixed = (n: number, digits = 1) => n.toFixed(digits)
const names = {
  bare: 'A bare Koa',
  meter: 'B planship-meter',
  'meter-no-headers': "B' planship-meter, headers: false",
  official: 'C official SDK pattern',
}
console.log(`\nplanship-meter benchmark${smoke ? ' (smoke: numbers are not meaningful)' : ''}`)
console.log(
  `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, ${connections} connections, ${durationS} s per server, ` +
    `${customers} customers in rotation, emulator latency ${latencyMs} ms\n`,
)
console.log(
  '| server | req/s | p50 ms | p99 ms | server CPU µs/req | requests | non-2xx | errors | token | entitlements | usage fetch | report POST |',
)
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
for (const row of rows) {
  const u = row.upstream
  console.log(
    `| ${names[row.mode]} | ${fixed(row.rps, 0)} | ${row.p50} | ${row.p99} | ${fixed(row.cpuUsPerRequest)} | ${row.requests} | ${row.non2xx} | ${row.errors} | ` +
      `${fixed(u.token, 2)} | ${fixed(u.entitlements, 2)} | ${fixed(u['usage fetch'], 2)} | ${fixed(u['report POST'], 2)} |`,
  )
}
console.log('\n(upstream columns: calls to Planship per 1 000 requests)\n')
console.log(
  `B/A throughput ${fixed(b.rps / a.rps, 2)} (target ≥ 0.90); B p99 − A p99 = ${b.p99 - a.p99} ms (target ≤ 1 ms)`,
)
console.log(
  `Server CPU per request: A ${fixed(a.cpuUsPerRequest)} µs, B ${fixed(b.cpuUsPerRequest)} µs ` +
    `(+${fixed(b.cpuUsPerRequest - a.cpuUsPerRequest)} µs: enforcement, and reporting's share of the POSTs)`,
)
console.log(
  `RateLimit headers: B ${fixed(b.cpuUsPerRequest)} µs vs B' ${fixed(bOff.cpuUsPerRequest)} µs of server CPU per request ` +
    `(${b.cpuUsPerRequest >= bOff.cpuUsPerRequest ? '+' : ''}${fixed(b.cpuUsPerRequest - bOff.cpuUsPerRequest)} µs), ` +
    `throughput B/B' ${fixed(b.rps / bOff.rps, 2)}`,
)
console.log(`B/C throughput ${fixed(b.rps / c.rps, 1)}× (target ≥ 20×)`)
const reportsPerCustomerFlush = (b.upstream['report POST'] * b.requests) / 1000 / (customers * Math.floor(b.windowS))
console.log(`B report POSTs per customer per 1 s flush: ${fixed(reportsPerCustomerFlush, 2)} (target ≤ 1)`)
if (memory !== undefined) {
  console.log(
    `B RSS before ${mb(memory.before)}, after ${memoryCustomers} distinct customers ${mb(memory.after)} (heap ${mb(memory.heapAfter)})`,
  )
}
