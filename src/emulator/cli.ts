import { readFileSync, realpathSync } from 'node:fs'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { startEmulator, type EmulatorOptions } from './index.js'

const USAGE = `Usage: planship-emulator [options]

Runs a local Planship API emulator (API 0.3.1 wire format) for development and tests.

Options:
  --host <host>               interface to listen on (default 127.0.0.1)
  --port <port>               port to listen on, 0 for a free one (default 8787)
  --fixture <file.json>       products, plans, levers, customers and credentials (default: demo product)
  --aggregation-lag-ms <ms>   delay before reported usage shows in usage and entitlements (default 0)
  --latency-ms <ms>           delay added before every API answer (default 0)
  --token-ttl-seconds <s>     lifetime of issued access tokens (default 3600)
  --version                   print the version and exit
  -h, --help                  show this help

The admin routes and the console have no authentication: keep the default loopback host unless
other machines must reach the emulator.

Console (no auth): open the emulator's URL in a browser: product, plans, customers' usage
against limits, a live feed of metering records, fault controls.

Admin routes (no auth): GET /_emulator/requests, POST /_emulator/reset,
POST /_emulator/revoke-tokens, POST /_emulator/clock {"advance_ms": n},
POST /_emulator/settings {"latency_ms", "aggregation_lag_ms"}, GET /_emulator/records,
POST /_emulator/customers {"alternative_id", "plan", "product", "name", "email", "metadata"},
GET /_emulator/state (what the console shows), GET /_emulator/events (Server-Sent Events),
GET /_emulator/usage?customer_id=&metering_id=&bucket=,
GET|PUT|DELETE /_emulator/faults {"seed", "rules": [{"route", "kind", "rate", ...}], "down",
"aggregation_lag_ms", "revoke_tokens"} (fault injection; kinds: error, rate-limit, latency, hang,
reset, apply-then-fail)
`

class UsageError extends Error {}

/** Parses the command line; throws a `UsageError` on anything it does not understand. */
export function parseCliArgs(
  argv: string[],
): { help: true } | { version: true } | { help: false; options: EmulatorOptions } {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        fixture: { type: 'string' },
        'aggregation-lag-ms': { type: 'string' },
        'latency-ms': { type: 'string' },
        'token-ttl-seconds': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    }))
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  if (values.help === true) return { help: true }
  if (values.version === true) return { version: true }
  const options: EmulatorOptions = { host: values.host ?? '127.0.0.1', port: 8787 }
  if (values.port !== undefined) options.port = number(values.port, '--port', { integer: true, max: 65535 })
  if (values.fixture !== undefined) options.fixture = values.fixture
  if (values['aggregation-lag-ms'] !== undefined) {
    options.aggregationLagMs = number(values['aggregation-lag-ms'], '--aggregation-lag-ms')
  }
  if (values['latency-ms'] !== undefined) options.latencyMs = number(values['latency-ms'], '--latency-ms')
  if (values['token-ttl-seconds'] !== undefined) {
    options.tokenTtlSeconds = number(values['token-ttl-seconds'], '--token-ttl-seconds', { min: 1 })
  }
  return { help: false, options }
}

function number(text: string, flag: string, rules: { integer?: boolean; min?: number; max?: number } = {}): number {
  const value = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN
  const ok =
    Number.isFinite(value) &&
    (rules.integer !== true || Number.isInteger(value)) &&
    value >= (rules.min ?? 0) &&
    value <= (rules.max ?? Number.MAX_SAFE_INTEGER)
  if (!ok) throw new UsageError(`${flag} expects a ${rules.integer === true ? 'whole ' : ''}number, got "${text}"`)
  return value
}

/**
 * Runs the CLI: starts the emulator, prints how to reach it and stops on SIGINT/SIGTERM.
 * Sets `process.exitCode` (2 for usage errors, 1 when the emulator cannot start).
 */
export async function main(argv: string[]): Promise<void> {
  let parsed
  try {
    parsed = parseCliArgs(argv)
  } catch (error) {
    process.stderr.write(`planship-emulator: ${(error as Error).message}\nRun planship-emulator --help for usage.\n`)
    process.exitCode = 2
    return
  }
  if ('version' in parsed) {
    process.stdout.write(`${packageVersion()}\n`)
    return
  }
  if (parsed.help) {
    process.stdout.write(USAGE)
    return
  }

  let emulator
  try {
    emulator = await startEmulator(parsed.options)
  } catch (error) {
    process.stderr.write(`planship-emulator: ${(error as Error).message}\n`)
    process.exitCode = 1
    return
  }

  const bound = boundAddress(emulator.server)
  if (!bound.loopback) {
    process.stderr.write(
      `planship-emulator: warning: listening on ${bound.url}, not on loopback. The admin routes (/_emulator/…) ` +
        'and the console have no authentication: anyone who can reach this port can read usage, create ' +
        'customers, reset the emulator and inject faults.\n',
    )
  }
  // The demo credentials are the point of this output: users paste them into their app's config.
  process.stdout.write(
    [
      `Planship emulator listening on ${bound.url}`,
      // A wildcard address is not one to connect to: say which URL a client on this machine uses.
      ...(bound.url === emulator.url ? [] : [`  base URL:      ${emulator.url}`]),
      `  console:       ${emulator.url}/`,
      `  client id:     ${emulator.clientId}`,
      `  client secret: ${emulator.clientSecret}`,
      `  product:       ${emulator.productSlug}`,
      'Press Ctrl+C to stop.',
      '',
    ].join('\n'),
  )

  const stop = (): void => {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
    emulator.close().then(
      () => process.stdout.write('Planship emulator stopped.\n'),
      (error: unknown) => {
        process.stderr.write(`planship-emulator: ${(error as Error).message}\n`)
        process.exitCode = 1
      },
    )
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

/** The address the server really listens on, as a URL, and whether only this machine can reach it. */
export function boundAddress(server: Server): { url: string; loopback: boolean } {
  const { address, family, port } = server.address() as AddressInfo
  const host = family === 'IPv6' || address.includes(':') ? `[${address}]` : address
  const loopback = /^127\./.test(address) || address === '::1' || /^::ffff:127\./i.test(address)
  return { url: `http://${host}:${port}`, loopback }
}

/** Our package.json's version; this file is two levels below it both in `src/` and in `dist/`. */
function packageVersion(): string {
  const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8')
  return (JSON.parse(text) as { version: string }).version
}

/** Whether this module is the program's entry point (`tsx src/emulator/cli.ts`), not an import. */
function isEntryModule(): boolean {
  const entry = process.argv[1]
  if (entry === undefined) return false
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href
  } catch {
    return false
  }
}

if (isEntryModule()) await main(process.argv.slice(2))
