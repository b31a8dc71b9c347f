/**
 * `tsx bench/report-cost.ts`: CPU per usage report POST on the client side only (the server runs
 * in a child process), for the default transport and for the global fetch, alternating.
 * `BENCH_OTEL=sdk` registers an OpenTelemetry SDK first (every POST then gets a span and a duration).
 */
import { fork } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import Koa from 'koa'
import request from 'supertest'
import { createMeter, type Meter } from '../src/index.js'
import { registerSdk } from './otel-sdk.js'

/** Leaves one pending report for each of `count` customers. */
async function pend(meter: Meter, prefix: string, count: number): Promise<void> {
  const app = new Koa()
  app.use(meter.consume('api-call'))
  app.use((ctx) => {
    ctx.body = 'ok'
  })
  const callback = app.callback()
  for (let i = 0; i < count; i++) await request(callback).get('/').set('x-customer-id', `${prefix}${i}`)
}

if (process.argv[2] === 'server') {
  // A trivial Planship: every answer is a constant, so the cost measured is the client's.
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
  server.keepAliveTimeout = 30_000
  server.listen(0, '127.0.0.1', () => process.send?.((server.address() as AddressInfo).port))
  process.on('disconnect', () => process.exit(0))
} else {
  const stopSdk = process.env['BENCH_OTEL'] === 'sdk' ? await registerSdk() : undefined
  const child = fork(new URL(import.meta.url), ['server'], { execArgv: ['--import', 'tsx'] })
  const port = await new Promise<number>((resolve) => child.once('message', (message) => resolve(message as number)))
  const baseUrl = `http://127.0.0.1:${port}`
  const keys = 2_000
  const results: Record<string, number[]> = {}
  for (let round = 0; round < 5; round++) {
    for (const [name, fetchImpl] of [
      ['undici Pool (default)', undefined],
      ['global fetch', globalThis.fetch],
    ] as const) {
      const meter = createMeter({
        productSlug: 'p',
        planship: { baseUrl, clientId: 'id', clientSecret: 'secret' },
        identify: (ctx) => ctx.get('x-customer-id'),
        fetch: fetchImpl,
        logger: {},
        reporting: { flushIntervalMs: 3_600_000, maxConcurrency: 4 },
      })
      await pend(meter, 'warm', 50)
      await meter.flush() // token, connections
      await pend(meter, 'c', keys)
      const cpu = process.cpuUsage()
      const result = await meter.flush()
      const used = process.cpuUsage(cpu)
      ;(results[name] ??= []).push((used.user + used.system) / result.reports)
      await meter.close()
    }
  }
  for (const [name, perPost] of Object.entries(results)) {
    const sorted = [...perPost].sort((a, b) => a - b)
    console.log(
      `${name}: ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} µs client CPU per report POST (median of ${sorted.length}; ` +
        `${sorted[0]!.toFixed(0)}–${sorted.at(-1)!.toFixed(0)}), ${keys} POSTs each`,
    )
  }
  child.disconnect()
  await stopSdk?.()
}
