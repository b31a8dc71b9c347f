/**
 * `npm run bench`: per framework (Koa, Express, Fastify, Hono), the bare route (A), planship-meter
 * (B) and the framework's in-memory limiter keyed by customer (L), plus diagnostic rows (B with
 * reporting off or without RateLimit headers, two no-op Express layers, the official SDK pattern
 * and streamed bodies on Koa); each server in its own process, the emulator in another, load from
 * this one, in alternating rounds, reported as medians with their min–max; B against A and L
 * also per round (paired: the servers of one round ran within seconds of each other).
 * `npm run bench -- --smoke` runs a few seconds of each, without thresholds (CI). `--frameworks
 * koa,express` and `--modes bare,meter,limiter` select rows, `--rate N` loads every server at the
 * same N req/s (CPU per request at equal load), `--pin` puts the server on its own CPU;
 * bench/pipeline.ts is the in-process, less noisy view of the request path.
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process'
import os from 'node:os'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import {
  FRAMEWORKS,
  type Framework,
  hasMeter,
  MODES,
  MODES_OF,
  type Mode,
  type PlanshipTarget,
  usesMeter,
} from './servers/index.js'
import { ask, type Message, stop } from './ipc.js'

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    /** Writes a CPU profile of each server process to bench/profiles/. */
    profile: { type: 'boolean', default: false },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    connections: { type: 'string' },
    'latency-ms': { type: 'string' },
    customers: { type: 'string' },
    'memory-customers': { type: 'string' },
    /** Requests per second, the same for every server (autocannon's overallRate): CPU per request at equal load. */
    rate: { type: 'string' },
    /** Pins the server to one CPU and the load generator and emulator to another (needs taskset and 2 CPUs). */
    pin: { type: 'boolean', default: false },
    /** Comma-separated rows to run in each framework, e.g. `bare,meter,limiter` (default: all). */
    modes: { type: 'string' },
    /** Comma-separated frameworks, e.g. `koa,express` (default: all four). */
    frameworks: { type: 'string' },
  },
})
const smoke = values.smoke === true
const durationS = Number(values.duration ?? (smoke ? 1 : 8))
const rounds = Number(values.rounds ?? (smoke ? 1 : 3))
const connections = Number(values.connections ?? (smoke ? 8 : 32))
const latencyMs = Number(values['latency-ms'] ?? 20)
const customers = Number(values.customers ?? (smoke ? 50 : 1_000))
const memoryCustomers = Number(values['memory-customers'] ?? (smoke ? 2_000 : 200_000))
/** RSS is read first after this many distinct customers, then after all of them. */
const memoryCheckpoint = Math.min(10_000, memoryCustomers / 2)
const pinned = values.pin === true && os.cpus().length >= 2
const rate = values.rate === undefined ? undefined : Number(values.rate)

interface Server {
  child: ChildProcess
  ready: Message
  /** MB freed by garbage collections so far, from the server's `--trace-gc` lines. */
  freedMb: () => number
}

/** Forks a bench process; servers run with `--trace-gc` so that allocation can be counted. */
function start(script: string, args: string[], env: Record<string, string> = {}): Promise<Server> {
  const isServer = script.includes('server')
  const child = fork(new URL(script, import.meta.url), args, {
    execArgv: [
      '--import',
      'tsx',
      '--expose-gc',
      ...(isServer ? ['--trace-gc'] : []),
      ...(values.profile === true && isServer ? ['--cpu-prof', '--cpu-prof-dir=bench/profiles'] : []),
    ],
    env: { ...process.env, ...env },
    stdio: isServer ? ['ignore', 'pipe', 'inherit', 'ipc'] : 'inherit',
  })
  if (pinned) pin(child.pid!, isServer ? SERVER_CPU : LOAD_CPU)
  let freed = 0
  let partial = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      // e.g. "[123:0x…]  456 ms: Scavenge 12.3 (14.0) -> 11.2 (15.0) MB, …"
      const gc = /(?:Scavenge|Mark-Compact|Mark-sweep|Minor Mark-Sweep)\S*\s+([\d.]+) \([\d.]+\) -> ([\d.]+)/.exec(line)
      if (gc !== null) freed += Math.max(0, Number(gc[1]) - Number(gc[2]))
    }
  })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)))
    child.once('message', (ready: Message) => resolve({ child, ready, freedMb: () => freed }))
  })
}

/** `--pin`: the server under test on CPU 0, the load generator and the emulator on CPU 1 (Linux, taskset). */
const SERVER_CPU = '0'
const LOAD_CPU = '1'
function pin(pid: number, cpu: string) {
  execFileSync('taskset', ['-a', '-p', '-c', cpu, String(pid)], { stdio: 'ignore' })
}
if (pinned) pin(process.pid, LOAD_CPU)

/** Load with one customer id per request, rotating through `count` ids. */
function load(port: number, prefix: string, count: number, opts: { durationS?: number; amount?: number }) {
  let next = 0
  return autocannon({
    url: `http://127.0.0.1:${port}/v1/widgets`,
    connections,
    // The measured run only: warm-ups go as fast as they can.
    ...(rate !== undefined && opts.amount === undefined && opts.durationS === undefined ? { overallRate: rate } : {}),
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

interface Sample {
  rps: number
  p50: number
  p99: number
  /** Server CPU time (user + system) per request, in µs: independent of the load generator's limits. */
  cpuUs: number
  /** Bytes the server allocated per request (from its GC trace). */
  bytes: number
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
const stats = async (server: Server, gc = false) => {
  const reply = await ask(server.child, { type: 'stats', gc })
  return {
    cpuUs: reply['cpuUs'] as number,
    heapUsed: reply['heapUsed'] as number,
    heapTotal: reply['heapTotal'] as number,
    external: reply['external'] as number,
    rss: reply['rss'] as number,
  }
}

/** A flush interval and a little: B's flushes of a phase land in it (shorter in a smoke run). */
const settleMs = smoke ? 300 : 1_200

async function measure({ framework, mode }: Row): Promise<Sample> {
  const server = await start('./server-process.ts', [framework, mode, JSON.stringify(target)])
  const port = server.ready['port'] as number
  // Warm up: every customer once (fills B's cache, C's token), then a second of load.
  await load(port, 'bench', customers, { amount: customers })
  await load(port, 'bench', customers, { durationS: smoke ? 0.5 : 1 })
  await new Promise((resolve) => setTimeout(resolve, settleMs)) // let B's warm-up flush pass
  const before = await counts()
  const statsBefore = await stats(server)
  const freedBefore = server.freedMb()
  const result = await load(port, 'bench', customers, {})
  await new Promise((resolve) => setTimeout(resolve, settleMs)) // the run's last flush belongs to it
  const after = await counts()
  const end = await stats(server)
  const requests = result.requests.total
  const per1000 = (names: readonly string[]) =>
    (names.reduce((sum, name) => sum + (after[name] ?? 0) - (before[name] ?? 0), 0) * 1000) / requests
  const allocated = (server.freedMb() - freedBefore) * 1024 * 1024 + (end.heapUsed - statsBefore.heapUsed)
  await stop(server.child)
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuUs: (end.cpuUs - statsBefore.cpuUs) / requests,
    bytes: Math.max(0, allocated / requests),
    non2xx: result.non2xx,
    errors: result.errors,
    upstream: Object.fromEntries(
      Object.entries(kinds).map(([kind, names]) => [kind, per1000(names)]),
    ) as Sample['upstream'],
  }
}

/** Report POSTs per second while `count` distinct customers pass through B, and its RSS. */
async function manyCustomers(framework: Framework, count: number, checkpoint: number) {
  const server = await start('./server-process.ts', [framework, 'meter', JSON.stringify(target)])
  const port = server.ready['port'] as number
  await ask(emulator.child, { type: 'latency', ms: 0 })
  const rssStart = (await stats(server, true)).rss
  await load(port, 'mem', checkpoint, { amount: checkpoint })
  const rssCheckpoint = (await stats(server, true)).rss
  const before = await counts()
  const startedAt = performance.now()
  const stream = await load(port, 'mem', count, { amount: count })
  const seconds = (performance.now() - startedAt) / 1000
  const posts = ((await counts())['reportUsage'] ?? 0) - (before['reportUsage'] ?? 0)
  const end = await stats(server, true)
  // The backlog delivered, then the aggregation lag (5 s) and a flush pass: what stays is the bound.
  await ask(server.child, { type: 'deliver' })
  await new Promise((resolve) => setTimeout(resolve, 5_000 + 2_500))
  const delivered = await stats(server, true)
  if (process.env['BENCH_HEAP_SNAPSHOT'] !== undefined)
    console.log('heap snapshot', (await ask(server.child, { type: 'heap-snapshot' }))['file'])
  await ask(emulator.child, { type: 'latency', ms: latencyMs })
  await stop(server.child)
  return {
    rssStart,
    rssCheckpoint,
    rssEnd: end.rss,
    heapEnd: end.heapUsed,
    heapTotalEnd: end.heapTotal,
    externalEnd: end.external,
    heapDelivered: delivered.heapUsed,
    /** Requests refused while the stream ran: 503s past reporting.maxPendingKeys. */
    refused: stream.non2xx,
    rssDelivered: delivered.rss,
    postsPerSecond: posts / seconds,
  }
}

/** One server under test: a framework and one of its rows. */
interface Row {
  framework: Framework
  mode: Mode
}
const list = <T extends string>(option: string, value: string | undefined, known: readonly T[]): readonly T[] => {
  if (value === undefined) return known
  const wanted = value.split(',') as T[]
  const unknown = wanted.find((item) => !known.includes(item))
  if (unknown !== undefined) throw new TypeError(`--${option}: unknown ${unknown} (known: ${known.join(', ')})`)
  return wanted
}
const frameworks = list('frameworks', values.frameworks, FRAMEWORKS)
const wantedModes = list('modes', values.modes, MODES)
/** A framework whose meter is not in this checkout (its adapter not merged yet) runs without its meter rows. */
const missing = frameworks.filter((framework) => !hasMeter(framework))
for (const framework of missing)
  console.log(`${framework}: no src/${framework}/index.ts in this checkout, its meter rows are skipped`)
const rows: Row[] = frameworks.flatMap((framework) =>
  MODES_OF[framework]
    .filter((mode) => wantedModes.includes(mode) && (!usesMeter(mode) || !missing.includes(framework)))
    .map((mode) => ({ framework, mode })),
)
const key = ({ framework, mode }: Row) => `${framework}:${mode}`
const samples = new Map<string, Sample[]>(rows.map((row) => [key(row), []]))
for (let round = 0; round < rounds; round++) {
  // Alternate the order, so that no server always runs on a warmer (or busier) machine.
  const order = rows.map((_, i) => rows[(i + round) % rows.length]!)
  for (const row of order) samples.get(key(row))!.push(await measure(row))
}

/** The middle value; of an even count, the mean of the middle two (of 2 rounds, not the larger). */
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b)
  const half = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[half]! : (sorted[half - 1]! + sorted[half]!) / 2
}
const spread = (xs: number[], digits: number) => {
  const text = (n: number) => n.toFixed(digits)
  return xs.length === 1 ? text(xs[0]!) : `${text(median(xs))} (${text(Math.min(...xs))}–${text(Math.max(...xs))})`
}
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`
const FRAMEWORK_NAMES: Record<Framework, string> = { koa: 'Koa', express: 'Express', fastify: 'Fastify', hono: 'Hono' }
const LIMITERS: Record<Framework, string> = {
  koa: 'koa-ratelimit',
  express: 'express-rate-limit',
  fastify: '@fastify/rate-limit',
  hono: 'hono-rate-limiter',
}
const nameOf = ({ framework, mode }: Row): string => {
  const fw = FRAMEWORK_NAMES[framework]
  const names: Record<Mode, string> = {
    bare: `A bare ${fw}`,
    'bare-layers': `A + two no-op layers`,
    meter: 'B planship-meter',
    'meter-quiet': 'B, reporting off',
    'meter-no-headers': 'B, headers: false',
    limiter: `L ${LIMITERS[framework]} (memory)`,
    official: 'C official SDK pattern',
    'bare-stream': 'AS bare, streamed body',
    'meter-stream': 'BS planship-meter, streamed body',
  }
  return `${fw}: ${names[mode]}`
}
console.log(`\nplanship-meter benchmark${smoke ? ' (smoke: numbers are not meaningful)' : ''}`)
console.log(
  `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, ${connections} connections, ` +
    `${durationS} s per server per round, ${rounds} rounds (median, min–max), ${customers} customers in rotation, ` +
    `emulator latency ${latencyMs} ms\n`,
)
console.log(
  '| server | req/s | p50 ms | p99 ms | server CPU µs/req | bytes/req | non-2xx | token | entitlements | usage fetch | report POST |',
)
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
const of = (row: Row, pick: (sample: Sample) => number) => samples.get(key(row))!.map(pick)
for (const row of rounds > 0 ? rows : []) {
  const taken = samples.get(key(row))!
  const u = (kind: keyof typeof kinds) => median(taken.map((sample) => sample.upstream[kind])).toFixed(2)
  const cells = [
    spread(
      of(row, (s) => s.rps),
      0,
    ),
    spread(
      of(row, (s) => s.p50),
      0,
    ),
    spread(
      of(row, (s) => s.p99),
      0,
    ),
    spread(
      of(row, (s) => s.cpuUs),
      1,
    ),
    spread(
      of(row, (s) => s.bytes),
      0,
    ),
    String(taken.reduce((sum, sample) => sum + sample.non2xx + sample.errors, 0)),
    u('token'),
    u('entitlements'),
    u('usage fetch'),
    u('report POST'),
  ]
  console.log(`| ${nameOf(row)} | ${cells.join(' | ')} |`)
}
// `--rounds 0` measures only the many-customers phase.
let postsPerSecond = Number.NaN
if (rounds > 0) {
  console.log('\n(upstream columns: calls to Planship per 1 000 requests, median)\n')
  for (const framework of frameworks) {
    const has = (...wanted: Mode[]) => wanted.every((mode) => samples.has(key({ framework, mode })))
    const m = (mode: Mode, pick: (sample: Sample) => number) => median(of({ framework, mode }, pick))
    const cpu = (mode: Mode) => m(mode, (s) => s.cpuUs)
    const fw = FRAMEWORK_NAMES[framework]
    /** Per round, `of` against `to` measured in the same round: a slow drift of the machine cancels out. */
    const paired = (of: Mode, to: Mode, combine: (a: number, b: number) => number, digits: number) => {
      const theirs = samples.get(key({ framework, mode: to }))!
      return spread(
        samples.get(key({ framework, mode: of }))!.map((sample, round) => combine(sample.cpuUs, theirs[round]!.cpuUs)),
        digits,
      )
    }
    if (has('bare', 'meter')) {
      const [cpuA, cpuB] = [cpu('bare'), cpu('meter')]
      console.log(
        `${fw}: B − A ${(cpuB - cpuA).toFixed(1)} µs of server CPU per request (A ${cpuA.toFixed(1)}, B ${cpuB.toFixed(1)}, ` +
          `A/B ${(cpuA / cpuB).toFixed(2)}; paired per round ${paired('meter', 'bare', (b, a) => b - a, 1)} µs)` +
          (has('bare-layers') ? `; two no-op layers ${(cpu('bare-layers') - cpuA).toFixed(1)} µs` : '') +
          (has('meter-quiet') ? `; B with reporting off ${cpu('meter-quiet').toFixed(1)} µs` : ''),
      )
      const rpsB = m('meter', (s) => s.rps)
      console.log(
        `${fw}: B/A throughput ${(rpsB / m('bare', (s) => s.rps)).toFixed(2)}${rate === undefined ? '' : ` (equal at --rate ${rate})`}; ` +
          `B p99 − A p99 = ${m('meter', (s) => s.p99) - m('bare', (s) => s.p99)} ms` +
          (has('official') ? `; B/C throughput ${(rpsB / m('official', (s) => s.rps)).toFixed(0)}×` : ''),
      )
    }
    if (has('bare', 'meter', 'limiter')) {
      const [cpuA, cpuB, cpuL] = [cpu('bare'), cpu('meter'), cpu('limiter')]
      console.log(
        `${fw}: meter vs ${LIMITERS[framework]}: B ${cpuB.toFixed(1)} µs, L ${cpuL.toFixed(1)} µs; over A: ` +
          `B +${(cpuB - cpuA).toFixed(1)}, L +${(cpuL - cpuA).toFixed(1)} µs (B/L ${(cpuB / cpuL).toFixed(2)}; ` +
          `paired per round ${paired('meter', 'limiter', (b, l) => b / l, 2)})`,
      )
    }
    if (has('meter', 'meter-no-headers')) {
      const [cpuB, cpuNoHeaders] = [cpu('meter'), cpu('meter-no-headers')]
      console.log(
        `${fw}: RateLimit headers ${cpuB >= cpuNoHeaders ? '+' : ''}${(cpuB - cpuNoHeaders).toFixed(1)} µs of server CPU per request ` +
          `(B ${cpuB.toFixed(1)}, B with headers: false ${cpuNoHeaders.toFixed(1)})`,
      )
    }
    if (has('bare-stream', 'meter-stream')) {
      const [cpuA, cpuB] = [cpu('bare-stream'), cpu('meter-stream')]
      console.log(
        `${fw}: streamed body (8 SSE events, usage read when the response is over): AS/BS server CPU ${(cpuA / cpuB).toFixed(2)}, ` +
          `+${(cpuB - cpuA).toFixed(1)} µs per request (AS ${cpuA.toFixed(1)}, BS ${cpuB.toFixed(1)})`,
      )
    }
    if (has('meter') && Number.isNaN(postsPerSecond))
      postsPerSecond = (m('meter', (s) => s.upstream['report POST']) * m('meter', (s) => s.rps)) / 1000
  }
}
// Then many distinct customers through B: report POSTs per second and RSS (printed last, it is long).
// On the first selected framework that has its meter (Koa's unless deselected); none with `--memory-customers 0`.
const memoryFramework = memoryCustomers > 0 ? frameworks.find((framework) => !missing.includes(framework)) : undefined
const busy =
  memoryFramework === undefined ? undefined : await manyCustomers(memoryFramework, memoryCustomers, memoryCheckpoint)
await stop(emulator.child)
if (busy !== undefined) {
  console.log(
    `B (${memoryFramework}) report POSTs per second: ${postsPerSecond.toFixed(0)} with ${customers} active customers, ` +
      `${busy.postsPerSecond.toFixed(0)} with ${memoryCustomers} (budget: reporting.maxPostsPerSecond, default 50)`,
  )
  console.log(
    `B RSS ${mb(busy.rssStart)} at start, ${mb(busy.rssCheckpoint)} after ${memoryCheckpoint} distinct customers, ` +
      `${mb(busy.rssEnd)} after ${memoryCustomers} (heap ${mb(busy.heapEnd)} used of ${mb(busy.heapTotalEnd)}, external ${mb(busy.externalEnd)}; ` +
      `${busy.refused} refused past reporting.maxPendingKeys)`,
  )
  console.log(
    `B once that backlog is delivered and the aggregation lag is past: heap ${mb(busy.heapDelivered)} used, RSS ${mb(busy.rssDelivered)}`,
  )
}
