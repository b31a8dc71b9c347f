/**
 * `tsx bench/alloc-profile.ts`: bytes allocated per warm metered request, by allocation site
 * (V8's sampling heap profiler, counting collected objects too), through one framework's whole
 * pipeline in process (bench/pipeline-request.ts). `tsx bench/alloc-profile.ts bare` gives the
 * baseline; `tsx bench/alloc-profile.ts meter express` profiles the Express meter.
 */
import { Session } from 'node:inspector/promises'
import { startEmulator } from '../src/emulator/index.js'
import { request } from './pipeline-request.js'
import { createServer, type Framework, type Mode } from './servers/index.js'

const emu = await startEmulator()
const customers = 1000
for (let i = 0; i < customers; i++) emu.createCustomer(`bench-${i}`, 'pro')
// The server of bench/servers/ named by argv[2] (default: the meter) of framework argv[3] (default: Koa), in process.
const mode = (process.argv[2] ?? 'meter') as Mode
const framework = (process.argv[3] ?? 'koa') as Framework
const target = { url: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret, productSlug: emu.productSlug }
const { handler, meter } = await createServer(framework, mode, target)
const ids = Array.from({ length: customers }, (_, i) => `bench-${i}`)
const run = (i: number) => request(handler, ids[i % customers]!)
for (let i = 0; i < customers * 20; i++) await run(i)
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
console.log(
  `~${(total / n).toFixed(0)} bytes per request sampled through ${framework} in process (${mode}; includes the test loop)`,
)
for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env['TOP'] ?? 25)))
  console.log(`${(bytes / n).toFixed(0).padStart(6)}  ${site}`)
await meter?.close()
await emu.close()
