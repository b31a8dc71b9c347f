/**
 * `tsx bench/pipeline.ts`: the whole Koa pipeline of bench/servers.ts (A, B, K …) in one
 * process, without sockets: real IncomingMessage/ServerResponse objects over an in-memory
 * stream, so the app, the router, the meter and Node's response code all run, and TCP and the
 * load generator do not. CPU µs per request, servers interleaved, median of rounds. Much less
 * noisy than HTTP on a shared machine; use it to compare changes to the request path.
 */
import { startEmulator } from '../src/emulator/index.js'
import { request } from './pipeline-request.js'
import { createServer, type Mode } from './servers.js'

const modes = (process.env['BENCH_MODES'] ?? 'bare,meter,meter-no-headers,ratelimit').split(',') as Mode[]
const rounds = Number(process.env['BENCH_ROUNDS'] ?? 5)
const perRound = Number(process.env['BENCH_REQUESTS'] ?? 100_000)
const customers = 1000

const emu = await startEmulator()
for (let i = 0; i < customers; i++) emu.createCustomer(`bench-${i}`, 'pro')
const target = { url: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret, productSlug: emu.productSlug }

const servers = modes.map((mode) => ({ mode, ...createServer(mode, target), cpu: [] as number[] }))

const handlers = servers.map((server) => server.app.callback())
// Warm up: every customer once per server (fills the meter's cache), then a few rounds.
for (const handler of handlers) {
  for (let i = 0; i < customers; i++) await request(handler, `bench-${i}`)
  for (let i = 0; i < 20_000; i++) await request(handler, `bench-${i % customers}`)
}
await new Promise((resolve) => setTimeout(resolve, 1_500))

for (let round = 0; round < rounds; round++) {
  for (const [index, server] of servers.entries()) {
    const handler = handlers[index]!
    global.gc?.()
    const start = process.cpuUsage()
    let statuses = 0
    // 32 requests in flight, as the HTTP bench's 32 connections.
    let next = 0
    const worker = async () => {
      while (next < perRound) {
        const i = next++
        if ((await request(handler, `bench-${i % customers}`)) !== 200) statuses++
      }
    }
    await Promise.all(Array.from({ length: 32 }, worker))
    const { user, system } = process.cpuUsage(start)
    if (statuses > 0) throw new Error(`${server.mode}: ${statuses} non-200 answers`)
    server.cpu.push((user + system) / perRound)
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const base = median(servers[0]!.cpu)
console.log(
  `in-process Koa pipeline, ${rounds} rounds × ${perRound} requests, ${customers} customers, CPU µs/req (median, min–max)`,
)
for (const server of servers) {
  const m = median(server.cpu)
  console.log(
    `  ${server.mode.padEnd(18)} ${m.toFixed(2)} (${Math.min(...server.cpu).toFixed(2)}–${Math.max(...server.cpu).toFixed(2)})  ` +
      `${servers[0]!.mode}/this ${(base / m).toFixed(2)}  +${(m - base).toFixed(2)} µs`,
  )
}
for (const server of servers) await server.meter?.close()
await emu.close()
