/**
 * `tsx bench/alloc-profile.ts`: bytes allocated per warm metered request, by allocation site
 * (V8's sampling heap profiler, counting collected objects too), without HTTP.
 */
import { Session } from 'node:inspector/promises'
import type { Context } from 'koa'
import { startEmulator } from '../src/emulator/index.js'
import { createMeter } from '../src/index.js'

const emu = await startEmulator()
const customers = 1000
for (let i = 0; i < customers; i++) emu.createCustomer(`bench-${i}`, 'pro')
const meter = createMeter({
  productSlug: emu.productSlug,
  planship: { baseUrl: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret },
  identify: (ctx) => ctx.get('x-customer-id') || undefined,
  logger: {},
  reporting: { flushIntervalMs: 1_000_000 },
})
const mw = meter.consume('api-call')
const ident = meter.middleware()
const next = async () => {}
const ids = Array.from({ length: customers }, (_, i) => `bench-${i}`)
const run = async (i: number) => {
  const id = ids[i % customers]!
  const ctx = { get: () => id, set: () => {}, state: {}, status: 200 } as unknown as Context
  await ident(ctx, () => mw(ctx, next))
}
for (let i = 0; i < customers * 2; i++) await run(i)
const session = new Session()
session.connect()
await session.post('HeapProfiler.startSampling', {
  samplingInterval: 128,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
})
const n = 100_000
for (let i = 0; i < n; i++) await run(i)
const { profile } = await session.post('HeapProfiler.stopSampling')
const bySite = new Map<string, number>()
let total = 0
interface SampleNode {
  callFrame: { functionName: string; url: string; lineNumber: number }
  selfSize: number
  children: SampleNode[]
}
const walk = (node: SampleNode) => {
  const name = `${node.callFrame.functionName || '(anon)'} ${node.callFrame.url.split('/').slice(-2).join('/')}:${node.callFrame.lineNumber + 1}`
  const self = node.selfSize
  total += self
  if (self > 0) bySite.set(name, (bySite.get(name) ?? 0) + self)
  for (const child of node.children) walk(child)
}
walk(profile.head as SampleNode)
console.log(`~${(total / n).toFixed(0)} bytes per request sampled (includes the fake ctx and the test loop)`)
for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 25))
  console.log(`${(bytes / n).toFixed(0).padStart(6)}  ${site}`)
await meter.close()
await emu.close()
