/**
 * What the demo servers share: Planship from the environment (or the embedded emulator), the
 * try-it text, and a shutdown that flushes pending usage. `serve` builds the framework's app.
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startEmulator } from '../../src/emulator/index.js'
import type { MeterCore, PlanshipConnectionOptions } from '../../src/index.js'

export interface DemoPlanship {
  productSlug: string
  planship: PlanshipConnectionOptions
}

export async function serveDemo(
  name: string,
  serve: (planship: DemoPlanship, port: number) => { server: Server; meter: MeterCore },
  moreToTry: (url: string) => string[] = () => [],
): Promise<void> {
  const port = Number(process.env['PORT'] ?? 3000)
  const clientId = process.env['PLANSHIP_CLIENT_ID']
  const clientSecret = process.env['PLANSHIP_CLIENT_SECRET']
  const real = Boolean(clientId && clientSecret)

  const emulator = real ? undefined : await startEmulator({ port: Number(process.env['EMULATOR_PORT'] ?? 0) })
  const planship = emulator
    ? { baseUrl: emulator.url, clientId: emulator.clientId, clientSecret: emulator.clientSecret }
    : {
        baseUrl: process.env['PLANSHIP_BASE_URL'],
        clientId: clientId ?? '',
        clientSecret: clientSecret ?? '',
      }
  const productSlug = process.env['PLANSHIP_PRODUCT_SLUG'] ?? emulator?.productSlug ?? 'acme-api'

  const { server, meter } = serve({ productSlug, planship }, port)
  if (!server.listening) await new Promise((resolve) => server.once('listening', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  // URLs are single-quoted: unquoted, zsh would glob the `?` of a query.
  console.log(`Demo API on ${url}  (${name}; Planship: ${emulator ? `emulator at ${emulator.url}` : (planship.baseUrl ?? 'https://api.planship.io')})
${emulator ? `Console: ${emulator.url}/   (open it in a browser: usage against limits, live metering records, fault controls)\n` : ''}
Try it:
  curl -i '${url}/v1/search?q=hello' -H 'x-customer-id: free-customer'    # 100 api-calls a month, RateLimit headers
  curl -i '${url}/v1/export.csv' -H 'x-customer-id: free-customer'        # 403: csv-export is a pro feature
  curl -i '${url}/v1/export.csv' -H 'x-customer-id: pro-customer'         # 200
  for i in $(seq 6); do curl -s -o /dev/null -w '%{http_code} ' -X POST '${url}/v1/renders' -H 'x-customer-id: free-customer'; done; echo   # 5 per minute, then 429
  curl -i '${url}/v1/search'                                              # 401: no customer
${[...moreToTry(url), ''].join('\n')}${emulator ? `  curl -s '${emulator.url}/_emulator/usage?customer_id=free-customer&metering_id=api-call'   # usage Planship received (flushed every second)\n` : ''}
Ctrl-C flushes pending usage and exits.`)

  let stopping = false
  async function shutdown(signal: string): Promise<void> {
    if (stopping) return
    stopping = true
    console.log(`\n${signal}: flushing usage…`)
    server.close()
    server.closeAllConnections()
    const { undelivered } = await meter.close()
    if (undelivered.length > 0) console.error('undelivered usage:', JSON.stringify(undelivered))
    await emulator?.close()
    process.exit(undelivered.length > 0 ? 1 : 0)
  }
  process.once('SIGINT', () => void shutdown('SIGINT'))
  process.once('SIGTERM', () => void shutdown('SIGTERM'))
}
