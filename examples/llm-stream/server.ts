/**
 * `npm run example:llm [-- express]`: an SSE completions endpoint over a fake model, billed per
 * token delivered, on the embedded Planship emulator (product `llm-api`: free 200 tokens a
 * month, pro 100 000).
 */
import type { AddressInfo } from 'node:net'
import { startEmulator } from '../../src/emulator/index.js'
import { createCompletionsApp as expressApp } from './express.js'
import { createCompletionsApp as koaApp } from './koa.js'
import { llmFixture } from './model.js'

const framework = process.argv[2] === 'express' ? 'express' : 'koa'
const emulator = await startEmulator({ fixture: llmFixture })
const planship = {
  productSlug: emulator.productSlug,
  planship: { baseUrl: emulator.url, clientId: emulator.clientId, clientSecret: emulator.clientSecret },
}
const { app, meter } = framework === 'express' ? expressApp(planship) : koaApp(planship)
const server = app.listen(Number(process.env['PORT'] ?? 3000), '127.0.0.1')
await new Promise((resolve) => server.once('listening', resolve))
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
console.log(`Completions (${framework}) on ${url}; console at ${emulator.url}/
  curl -N '${url}/v1/completions?prompt=Hello&max_tokens=50' -H 'x-customer-id: free-customer'    # 50 tokens, billed 50
  curl -N '${url}/v1/completions?prompt=Hello&max_tokens=500' -H 'x-customer-id: free-customer'   # stops at the quota: event quota_exceeded
  curl -N --max-time 1 '${url}/v1/completions?max_tokens=500' -H 'x-customer-id: pro-customer'   # leaves after 1 s: billed what was sent
  curl -s '${emulator.url}/_emulator/usage?customer_id=free-customer&metering_id=tokens'          # tokens Planship received`)

async function shutdown(): Promise<void> {
  server.close()
  server.closeAllConnections()
  const { undelivered } = await meter.close()
  await emulator.close()
  process.exit(undelivered.length > 0 ? 1 : 0)
}
process.once('SIGINT', () => void shutdown())
process.once('SIGTERM', () => void shutdown())
