/**
 * `tsx bench/micro-headers.ts`: the in-process cost of consume() on a warm cache, without HTTP, with
 * the RateLimit headers on (`headers: 'draft'`, the default) and off (`headers: false`), in
 * alternating rounds of one run so that both see the same machine. Times are CPU time per call.
 */
import { startEmulator } from '../src/emulator/index.js'
import type { HeaderStyle } from '../src/index.js'
import { fakeCtxRun } from './fake-ctx-run.js'

const emu = await startEmulator()
const customers = 1000
for (let i = 0; i < customers; i++) emu.createCustomer(`bench-${i}`, 'pro')

function bench(headers: HeaderStyle) {
  const { meter, run } = fakeCtxRun(emu, customers, { headers })
  return { meter, run, label: headers === false ? 'headers off' : `headers '${headers}'` }
}

const cases = [bench('draft'), bench(false), bench('legacy')]
for (const { run } of cases) for (let i = 0; i < customers; i++) await run(i) // warm every cache
const tick = () => new Promise((resolve) => setImmediate(resolve))
const results = new Map<string, number[]>()
const rounds = Number(process.env['ROUNDS'] ?? 6)
for (let round = 0; round < rounds; round++) {
  const flushing = round % 2 === 1
  for (const { meter, run, label } of cases) {
    const n = 100_000
    // CPU time of this process, not wall time: other processes on a shared machine distort less.
    const start = process.cpuUsage()
    for (let i = 0; i < n; i++) {
      await run(i)
      if (i % 1000 === 0) await tick() // let sockets breathe, as a server would
      if (flushing && i % 20_000 === 0) await meter.flush().catch(() => {})
    }
    const used = process.cpuUsage(start)
    const us = (used.user + used.system) / n
    console.log(`${n} calls, ${label}${flushing ? ', flushing' : ''}: ${us.toFixed(2)} µs of CPU per request`)
    const key = `${label}${flushing ? ', flushing' : ''}`
    results.set(key, [...(results.get(key) ?? []), us])
    await meter.flush().catch(() => {})
  }
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
console.log('\nmedians (the header cost is the difference with "headers off" in the same kind of round):')
for (const [key, values] of results) {
  const off = median(results.get(key.replace(/^headers '\w+'/, 'headers off'))!)
  const cost = median(values) - off
  console.log(`  ${key}: ${median(values).toFixed(2)} µs per request (${cost >= 0 ? '+' : ''}${cost.toFixed(2)} µs)`)
}
for (const { meter } of cases) await meter.close()
await emu.close()
