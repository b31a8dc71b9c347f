/**
 * `tsx bench/report-cost.ts`: CPU per usage report POST (client and a trivial server in this
 * process), for the default transport and for the global fetch. `BENCH_OTEL=sdk` registers an
 * OpenTelemetry SDK first (every POST then gets a span and a duration).
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import Koa from 'koa'
import request from 'supertest'
import { createMeter } from '../src/index.js'
import { registerSdk } from './otel-sdk.js'

const stopSdk = process.env['BENCH_OTEL'] === 'sdk' ? await registerSdk() : undefined

const server = http.createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    res.setHeader('content-type', 'application/json')
    if (req.url?.endsWith('/auth/token')) res.end('{"access_token":"t","token_type":"bearer","expires_in":3600}')
    else if (req.url?.endsWith('/entitlements')) res.end('{"api-calls":-1}')
    else if (req.method === 'GET') res.end('{"api-calls":{"total":0,"by_bucket":{},"by_subscription":{}}}')
    else res.end('{"id":"r","usage":1,"metering_id":"api-call","customer_id":"c","product_id":"p"}')
  })
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

for (const [name, fetchImpl] of [
  ['node:http', undefined],
  ['global fetch', globalThis.fetch],
  ['node:http', undefined],
] as const) {
  const meter = createMeter({
    productSlug: 'p',
    planship: { baseUrl, clientId: 'id', clientSecret: 'secret' },
    identify: (ctx) => ctx.get('x-customer-id'),
    fetch: fetchImpl,
    logger: {},
    reporting: { flushIntervalMs: 3_600_000 },
  })
  const app = new Koa()
  app.use(meter.consume('api-call'))
  app.use((ctx) => {
    ctx.body = 'ok'
  })
  const keys = 2_000
  for (let i = 0; i < keys; i++) await request(app.callback()).get('/').set('x-customer-id', `c${i}`)
  const cpu = process.cpuUsage()
  const result = await meter.flush()
  const used = process.cpuUsage(cpu)
  console.log(
    `${name}: ${((used.user + used.system) / result.reports).toFixed(0)} µs CPU per report POST (${result.reports} POSTs)`,
  )
  await meter.close()
}
server.close()
await stopSdk?.()
