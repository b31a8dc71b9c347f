/**
 * `tsx bench/flush-profile.ts [out.cpuprofile]`: a CPU profile of flushing 4 000 report POSTs
 * over the default transport, and nothing else (the server runs in a child process).
 */
import { fork } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import Koa from 'koa'
import request from 'supertest'
import { createMeter } from '../src/index.js'

const child = fork(new URL('./report-cost.ts', import.meta.url), ['server'], { execArgv: ['--import', 'tsx'] })
const port = await new Promise<number>((resolve) => child.once('message', (message) => resolve(message as number)))
const meter = createMeter({
  productSlug: 'p',
  planship: { baseUrl: `http://127.0.0.1:${port}`, clientId: 'id', clientSecret: 'secret' },
  identify: (ctx) => ctx.get('x-customer-id'),
  logger: {},
  reporting: { flushIntervalMs: 3_600_000 },
})
const app = new Koa()
app.use(meter.consume('api-call'))
app.use((ctx) => {
  ctx.body = 'ok'
})
const callback = app.callback()
for (let i = 0; i < 4_000; i++) await request(callback).get('/').set('x-customer-id', `c${i}`)
const session = new Session()
session.connect()
await session.post('Profiler.enable')
await session.post('Profiler.start')
const cpu = process.cpuUsage()
const result = await meter.flush()
const used = process.cpuUsage(cpu)
const { profile } = await session.post('Profiler.stop')
writeFileSync(process.argv[2] ?? 'flush.cpuprofile', JSON.stringify(profile))
console.log(`${((used.user + used.system) / result.reports).toFixed(0)} µs per POST (profiling on)`)
await meter.close()
child.disconnect()
