/**
 * The Planship emulator of the benchmark, in its own process so that its CPU and memory are not
 * counted against the servers under test. Seeds `BENCH_CUSTOMERS` pro customers named bench-<n>
 * and answers IPC messages from run.ts.
 */
import { startEmulator } from '../src/emulator/index.js'

const customers = Number(process.env['BENCH_CUSTOMERS'] ?? 1000)
const emu = await startEmulator({ latencyMs: Number(process.env['BENCH_LATENCY_MS'] ?? 20) })
for (let i = 0; i < customers; i++) emu.createCustomer(`bench-${i}`, 'pro')
// The customers of the memory phase: many distinct ids pass through the meter once each.
const memoryCustomers = Number(process.env['BENCH_MEMORY_CUSTOMERS'] ?? 0)
for (let i = 0; i < memoryCustomers; i++) emu.createCustomer(`mem-${i}`, 'pro')

export type EmulatorMessage = { type: 'latency'; ms: number } | { type: 'counts' } | { type: 'close' }

process.on('message', async (message: EmulatorMessage) => {
  if (message.type === 'latency') emu.setLatency(message.ms)
  if (message.type === 'close') {
    await emu.close()
    process.disconnect()
    return
  }
  process.send?.({ type: 'counts', counts: emu.requestCounts() })
})
process.send?.({
  type: 'ready',
  url: emu.url,
  clientId: emu.clientId,
  clientSecret: emu.clientSecret,
  productSlug: emu.productSlug,
})
