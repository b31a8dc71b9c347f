/**
 * What the demo servers share: Planship from the environment (or the embedded emulator), the
 * try-it text, and a shutdown that flushes pending usage. `serve` builds the framework's app.
 */
import { once } from 'node:events'
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
  serve: (
    planship: DemoPlanship,
    port: number,
  ) => { server: Server; meter: MeterCore } | Promise<{ server: Server; meter: MeterCore }>,
  moreToTry: (url: string) => string[] = () => [],
  /** How the user started this demo, for messages saying how to start it differently. */
  command = 'npm start',
): Promise<void> {
  const port = portFrom('PORT', 3000, command)
  const emulatorPort = portFrom('EMULATOR_PORT', 0, command)
  const clientId = process.env['PLANSHIP_CLIENT_ID']
  const clientSecret = process.env['PLANSHIP_CLIENT_SECRET']
  const real = Boolean(clientId && clientSecret)

  const emulator = real
    ? undefined
    : await startEmulator({ port: emulatorPort }).catch((error: unknown) =>
        cannotListen(error, 'EMULATOR_PORT', emulatorPort, command),
      )
  const planship = emulator
    ? { baseUrl: emulator.url, clientId: emulator.clientId, clientSecret: emulator.clientSecret }
    : {
        baseUrl: process.env['PLANSHIP_BASE_URL'],
        clientId: clientId ?? '',
        clientSecret: clientSecret ?? '',
      }
  const productSlug = process.env['PLANSHIP_PRODUCT_SLUG'] ?? emulator?.productSlug ?? 'acme-api'

  const { server, meter } = await serve({ productSlug, planship }, port) // a Fastify app is built asynchronously
  // `once` rejects on the server's 'error' (a port in use): said in a line, not thrown unhandled.
  if (!server.listening) {
    await once(server, 'listening').catch(async (error: unknown) => {
      await meter.close()
      await emulator?.close()
      cannotListen(error, 'PORT', port, command)
    })
  }
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  // URLs are single-quoted: unquoted, zsh would glob the `?` of a query.
  console.log(`Demo API on ${url}  (${name}; Planship: ${emulator ? `emulator at ${emulator.url}` : (planship.baseUrl ?? 'https://api.planship.io')})
${emulator ? `Console: ${emulator.url}/   (open it in a browser: usage against limits, live metering records, fault controls)\n` : ''}
Try it:
  curl -i '${url}/v1/search?q=hello' -H 'x-customer-id: free-customer'    # 100 api-calls a month, RateLimit headers
  curl -i '${url}/v1/export.csv' -H 'x-customer-id: free-customer'        # 403: csv-export is a pro feature
  curl -i '${url}/v1/export.csv' -H 'x-customer-id: pro-customer'         # 200
  for i in $(seq 6); do curl -s -o /dev/null -w '%{http_code} ' -X POST '${url}/v1/renders' -H 'x-customer-id: free-customer'; done; echo   # 5 per minute, then 429
  curl -s '${url}/v1/usage' -H 'x-customer-id: free-customer'             # the customer's quotas: limit, used, remaining, resetsAt
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

/** The port in the environment variable `name`, or `fallback`; anything else than a port number ends the demo, saying so. */
function portFrom(name: string, fallback: number, command: string): number {
  const text = process.env[name]
  if (text === undefined) return fallback
  const port = Number(text)
  if (text.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65_535) {
    exit(
      `${name}=${text} is not a port number (0 to 65535; 0 picks a free one): e.g. ${name}=${fallback || 8787} ${command}`,
    )
  }
  return port
}

/** Ends the demo with a line saying why the server cannot listen on `port` and how to pick another. */
function cannotListen(error: unknown, name: string, port: number, command: string): never {
  const code = (error as { code?: unknown } | null)?.code
  const other = `choose another with ${name}, e.g. ${name}=${port === 65_535 ? 8787 : port + 1} ${command} (${name}=0 picks a free one)`
  if (code === 'EADDRINUSE')
    exit(`Port ${port} is in use on 127.0.0.1 (${name}): another process listens there; ${other}`)
  if (code === 'EACCES')
    exit(`Port ${port} on 127.0.0.1 (${name}) needs privileges this process does not have; ${other}`)
  exit(`Cannot listen on 127.0.0.1:${port} (${name}): ${error instanceof Error ? error.message : String(error)}`)
}

function exit(message: string): never {
  console.error(message)
  process.exit(1)
}
