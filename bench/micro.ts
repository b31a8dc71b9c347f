/**
 * `tsx bench/micro.ts`: the in-process cost of consume() on a warm cache, without HTTP.
 *
 * With no `BENCH_OTEL`, it runs itself in child processes, interleaved, once per OpenTelemetry
 * setup, and prints the medians: `absent` (@opentelemetry/api cannot be resolved, as in an app
 * that did not install it), `noop` (the API is installed, no SDK registered) and `sdk` (an SDK
 * registered before createMeter(), exporting metrics every second and batching spans, both to
 * exporters that discard them). `BENCH_OTEL=<setup> tsx bench/micro.ts` runs one setup;
 * `BENCH_ROUNDS` sets the rounds (default 5).
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startEmulator } from '../src/emulator/index.js'
import { fakeCtxRun } from './fake-ctx-run.js'
import { registerSdk } from './otel-sdk.js'

const SETUPS = ['absent', 'noop', 'sdk'] as const
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 5)
const setup = process.env['BENCH_OTEL']

if (setup === undefined) await compare()
else await measure(setup)

async function measure(setup: string): Promise<void> {
  const stopSdk = setup === 'sdk' ? await registerSdk() : undefined
  const emu = await startEmulator()
  const customers = 1000
  for (let i = 0; i < customers; i++) emu.createCustomer(`bench-${i}`, 'pro')
  const { meter, run } = fakeCtxRun(emu, customers)
  for (let i = 0; i < customers; i++) await run(i)
  const tick = () => new Promise((resolve) => setImmediate(resolve))
  for (const flushing of [false, true, false, true]) {
    const n = 300_000
    const start = process.hrtime.bigint()
    const cpu = process.cpuUsage()
    for (let i = 0; i < n; i++) {
      await run(i)
      if (i % 1000 === 0) await tick() // let sockets breathe, as a server would
      if (flushing && i % 20_000 === 0) await meter.flush().catch(() => {})
    }
    const ns = Number(process.hrtime.bigint() - start) / n
    // CPU time too: on a shared machine, wall time also measures the neighbours.
    const { user, system } = process.cpuUsage(cpu)
    const cpuUs = (user + system) / n
    console.log(
      `${n} calls${flushing ? ', flushing' : ''}: ${(ns / 1000).toFixed(2)} µs per request, ${cpuUs.toFixed(2)} µs CPU`,
    )
    await meter.flush().catch(() => {})
  }
  await meter.close()
  await emu.close()
  await stopSdk?.()
}

/** Each setup in its own process, round after round, so that drift hits them all alike. */
async function compare(): Promise<void> {
  const self = fileURLToPath(import.meta.url)
  const hide = fileURLToPath(new URL('../test/telemetry/fixtures/hide-otel-api.mjs', import.meta.url))
  const results = new Map<string, { warm: number[]; flushing: number[] }>()
  for (let round = 1; round <= ROUNDS; round++) {
    for (const name of SETUPS) {
      const args = [...(name === 'absent' ? ['--import', hide] : []), '--import', 'tsx', self]
      const child = spawnSync(process.execPath, args, { env: { ...process.env, BENCH_OTEL: name }, encoding: 'utf8' })
      if (child.status !== 0) throw new Error(`${name} failed:\n${child.stderr}`)
      const entry = results.get(name) ?? { warm: [], flushing: [] }
      for (const [, flushing, us] of child.stdout.matchAll(
        /calls(, flushing)?: [\d.]+ µs per request, ([\d.]+) µs CPU/g,
      )) {
        entry[flushing ? 'flushing' : 'warm'].push(Number(us))
      }
      results.set(name, entry)
      console.log(`round ${round} ${name}: ${child.stdout.trim().split('\n').join(' | ')}`)
    }
  }
  console.log(`\nmedian µs of CPU per request over ${ROUNDS} rounds × 2 passes (min–max):`)
  for (const [name, { warm, flushing }] of results) {
    console.log(`  ${name.padEnd(6)} warm ${summary(warm)}   flushing ${summary(flushing)}`)
  }
}

function summary(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b)
  const median = sorted[Math.floor(sorted.length / 2)] ?? NaN
  return `${median.toFixed(2)} (${sorted[0]?.toFixed(2)}–${sorted.at(-1)?.toFixed(2)})`
}
