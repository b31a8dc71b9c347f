/**
 * What bench/micro.ts and bench/micro-headers.ts share: a meter on the emulator and one warm
 * request through `middleware()` + `consume('api-call')` with a minimal fake ctx: no Koa
 * pipeline, no socket, only the header writes the adapter makes (Node's `res.setHeader`).
 */
import type { Context } from 'koa'
import type { Emulator } from '../src/emulator/index.js'
import { createMeter, type MeterOptions } from '../src/index.js'

export function fakeCtxRun(emu: Emulator, customers: number, options: Partial<MeterOptions> = {}) {
  const meter = createMeter({
    productSlug: emu.productSlug,
    planship: { baseUrl: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret },
    identify: (ctx) => ctx.get('x-customer-id') || undefined,
    logger: process.env['DEBUG_LOG']
      ? { warn: (m, f) => console.warn(m, f), error: (m, f) => console.error(m, f) }
      : {},
    reporting: { flushIntervalMs: 1_000_000 },
    ...options,
  })
  const mw = meter.consume('api-call')
  const ident = meter.middleware()
  const next = async () => {}
  /** Customer `bench-<i % customers>`. */
  const run = async (i: number) => {
    const id = `bench-${i % customers}`
    const written: Record<string, string> = {}
    const res = { setHeader: (name: string, value: string) => (written[name.toLowerCase()] = value) }
    const ctx = { get: () => id, state: {}, status: 200, headerSent: false, res } as unknown as Context
    await ident(ctx, () => mw(ctx, next))
  }
  return { meter, run }
}
