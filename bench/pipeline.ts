/**
 * `tsx bench/pipeline.ts`: the whole pipeline of one framework's bench servers
 * (bench/servers/: bare, meter, limiter …) in one process, without sockets: real
 * IncomingMessage/ServerResponse objects over an in-memory stream, so the app, the router, the
 * meter and Node's response code all run, and TCP and the load generator do not. CPU µs per
 * request, servers interleaved, median of rounds. Much less noisy than HTTP on a shared machine;
 * use it to compare changes to the request path. `BENCH_FRAMEWORK=express` (default koa),
 * `BENCH_MODES=bare,meter`, `BENCH_ROUNDS`, `BENCH_REQUESTS`, `BENCH_CUSTOMERS` (default 1 000);
 * `BENCH_QUIET=1` turns reporting off in every meter row (no report POSTs to the in-process
 * emulator, whose CPU would count); `BENCH_PROFILE=meter,bare` writes a CPU profile of those
 * servers' measured requests to bench/profiles/ (summarise one with bench/profile-summary.ts,
 * compare two with bench/profile-diff.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { startEmulator } from '../src/emulator/index.js'
import { request } from './pipeline-request.js'
import { createServer, type Framework, type Mode } from './servers/index.js'

const framework = (process.env['BENCH_FRAMEWORK'] ?? 'koa') as Framework
const modes = (process.env['BENCH_MODES'] ?? 'bare,meter,meter-no-headers,limiter').split(',') as Mode[]
const rounds = Number(process.env['BENCH_ROUNDS'] ?? 5)
const perRound = Number(process.env['BENCH_REQUESTS'] ?? 100_000)
const profiled = process.env['BENCH_PROFILE']?.split(',') as Mode[] | undefined
const customers = Number(process.env['BENCH_CUSTOMERS'] ?? 1000)

const emu = await startEmulator()
for (let i = 0; i < customers; i++) emu.createCustomer(`bench-${i}`, 'pro')
const target = { url: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret, productSlug: emu.productSlug }

const servers = await Promise.all(
  modes.map(async (mode) => ({ mode, ...(await createServer(framework, mode, target)), cpu: [] as number[] })),
)

// Warm up: every customer once per server (fills the meter's cache), then a few rounds.
for (const { handler } of servers) {
  for (let i = 0; i < customers; i++) await request(handler, `bench-${i}`)
  for (let i = 0; i < 20_000; i++) await request(handler, `bench-${i % customers}`)
}
await new Promise((resolve) => setTimeout(resolve, 1_500))

const session = profiled === undefined ? undefined : new Session()
if (session !== undefined) {
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 50 })
}

for (let round = 0; round < rounds; round++) {
  for (const server of servers) {
    const profiling = session !== undefined && profiled!.includes(server.mode)
    if (profiling) await session.post('Profiler.start')
    global.gc?.()
    const start = process.cpuUsage()
    let statuses = 0
    // 32 requests in flight, as the HTTP bench's 32 connections.
    let next = 0
    const worker = async () => {
      while (next < perRound) {
        const i = next++
        if ((await request(server.handler, `bench-${i % customers}`)) !== 200) statuses++
      }
    }
    await Promise.all(Array.from({ length: 32 }, worker))
    const { user, system } = process.cpuUsage(start)
    if (profiling) {
      const { profile } = await session.post('Profiler.stop')
      mkdirSync('bench/profiles', { recursive: true })
      writeFileSync(`bench/profiles/pipeline-${framework}-${server.mode}-${round}.cpuprofile`, JSON.stringify(profile))
    }
    if (statuses > 0) throw new Error(`${server.mode}: ${statuses} non-200 answers`)
    server.cpu.push((user + system) / perRound)
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const base = median(servers[0]!.cpu)
console.log(
  `in-process ${framework} pipeline, ${rounds} rounds × ${perRound} requests, ${customers} customers, CPU µs/req (median, min–max)`,
)
const range = (xs: number[]) => `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`
/** Per round, `of` against `to` measured right next to it: a slow drift of the machine cancels out. */
const paired = (of: number[], to: number[], combine: (a: number, b: number) => number) =>
  of.map((x, round) => combine(x, to[round]!))
for (const server of servers) {
  const m = median(server.cpu)
  console.log(
    `  ${server.mode.padEnd(18)} ${range(server.cpu)}  ${servers[0]!.mode}/this ${(base / m).toFixed(2)}  +${(m - base).toFixed(2)} µs` +
      (server === servers[0] ? '' : `  paired +${range(paired(server.cpu, servers[0]!.cpu, (a, b) => a - b))} µs`),
  )
}
const [meter, limiter] = [servers.find((s) => s.mode === 'meter'), servers.find((s) => s.mode === 'limiter')]
if (meter !== undefined && limiter !== undefined)
  console.log(`  meter/limiter, paired per round: ${range(paired(meter.cpu, limiter.cpu, (a, b) => a / b))}`)
for (const server of servers) await server.meter?.close()
await emu.close()
