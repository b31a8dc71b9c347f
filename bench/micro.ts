/** `tsx bench/micro.ts`: the in-process cost of consume() on a warm cache, without HTTP. */
import { startEmulator } from '../src/emulator/index.js'
import { createMeter } from '../src/index.js'
import type { Context } from 'koa'

const emu = await startEmulator()
const customers = 1000
for (let i = 0; i < customers; i++) emu.createCustomer(`bench-${i}`, 'pro')
const meter = createMeter({
  productSlug: emu.productSlug,
  planship: { baseUrl: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret },
  identify: (ctx) => ctx.get('x-customer-id') || undefined,
  logger: process.env['DEBUG_LOG'] ? { warn: (m, f) => console.warn(m, f), error: (m, f) => console.error(m, f) } : {},
  reporting: { flushIntervalMs: 1_000_000 },
})
const mw = meter.consume('api-call')
const ident = meter.middleware()
const next = async () => {}
const run = async (i: number) => {
  const id = `bench-${i % customers}`
  const ctx = { get: () => id, state: {}, status: 200 } as unknown as Context
  await ident(ctx, () => mw(ctx, next))
}
for (let i = 0; i < customers; i++) await run(i)
const tick = () => new Promise((resolve) => setImmediate(resolve))
for (const flushing of [false, true, false, true]) {
  const n = 300_000
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) {
    await run(i)
    if (i % 1000 === 0) await tick() // let sockets breathe, as a server would
    if (flushing && i % 20_000 === 0) await meter.flush().catch(() => {})
  }
  const ns = Number(process.hrtime.bigint() - start) / n
  console.log(`${n} calls${flushing ? ', flushing' : ''}: ${(ns / 1000).toFixed(2)} µs per request`)
  await meter.flush().catch(() => {})
}
await meter.close()
await emu.close()
