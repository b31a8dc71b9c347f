import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Fixture } from '../../src/emulator/index.js'
import type { MeteredReservation } from '../../src/index.js'

/** A product with one lever of 100 tokens, metered by the metering id `tokens`. */
export const tokensFixture: Fixture = {
  credentials: [{ clientId: 'tokens-id', clientSecret: 'tokens-secret' }],
  products: [
    {
      slug: 'tokens-api',
      levers: [{ slug: 'tokens', type: 'metered', meteringIds: ['tokens'], period: 'all-time' }],
      plans: [{ slug: 'basic', entitlements: { tokens: 100 } }],
    },
  ],
  customers: [],
}

/** How a test stream runs: `chunks` SSE events of `tokens` each, one every `delayMs`. */
export interface StreamPlan {
  chunks: number
  tokens: number
  delayMs: number
  /** Extend the reservation by this many units whenever the next chunk would go past it; 0: never. */
  block: number
  /** Throw after this many chunks (the body stream errors mid-response). */
  failAt: number
}

export function streamPlan(query: URLSearchParams): StreamPlan {
  const n = (name: string, fallback: number) => Number(query.get(name) ?? fallback)
  return {
    chunks: n('chunks', 10),
    tokens: n('tokens', 3),
    delayMs: n('delayMs', 0),
    block: n('block', 0),
    failAt: n('failAt', -1),
  }
}

/**
 * The SSE events of a stream, counting what it sent in `sent.tokens`. Before a chunk that would
 * go past the reservation it extends; when that is refused it sends `quota_exceeded` and ends.
 * With `response`, it stops once that is destroyed (its client gone): a generator waiting out
 * its delay would otherwise count one more chunk after the meter had read the usage.
 */
export async function* sseEvents(
  plan: StreamPlan,
  reservation: MeteredReservation | undefined,
  sent: { tokens: number },
  response?: { destroyed: boolean },
): AsyncGenerator<string> {
  for (let i = 0; i < plan.chunks; i++) {
    if (plan.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, plan.delayMs))
    if (response?.destroyed === true) return
    if (i === plan.failAt) throw new Error('the model crashed mid-stream')
    if (plan.block > 0 && reservation !== undefined && sent.tokens + plan.tokens > reservation.reserved) {
      if (!(await reservation.extend(plan.block))) {
        yield 'event: quota_exceeded\ndata: {}\n\n'
        return
      }
    }
    sent.tokens += plan.tokens
    yield `data: ${JSON.stringify({ chunk: i, tokens: plan.tokens })}\n\n`
  }
}

/** What a client read of a stream: its status, its message events (chunks), whether the quota ended it. */
export interface StreamRead {
  status: number
  chunks: number
  quotaExceeded: boolean
  body: string
}

/**
 * GETs `path` from `server` over a real socket and reads the SSE stream; with `abortAfter`, the
 * client goes away once it has read that many chunks.
 */
export async function readStream(
  server: http.Server,
  path: string,
  customerId: string,
  abortAfter?: number,
): Promise<StreamRead> {
  const { port } = server.address() as AddressInfo
  const req = http.get({ host: '127.0.0.1', port, path, headers: { 'x-customer-id': customerId } })
  req.on('error', () => {})
  const [res] = (await once(req, 'response')) as [http.IncomingMessage]
  let body = ''
  const read = (): StreamRead => ({
    status: res.statusCode ?? 0,
    // Complete message events: blocks with data and no event name.
    chunks: body.split('\n\n').filter((block, i, all) => i < all.length - 1 && block.startsWith('data: ')).length,
    quotaExceeded: body.includes('event: quota_exceeded'),
    body,
  })
  return new Promise((resolve) => {
    res.setEncoding('utf8')
    res.on('data', (text: string) => {
      body += text
      if (abortAfter !== undefined && read().chunks >= abortAfter) {
        req.destroy()
        resolve(read())
      }
    })
    res.on('error', () => resolve(read()))
    res.on('close', () => resolve(read()))
  })
}

/** GETs `path` and goes away after `afterMs` (or once `wait` resolves), before any of the response came. */
export async function abandon(
  server: http.Server,
  path: string,
  customerId: string,
  wait: number | (() => Promise<void>),
): Promise<void> {
  const { port } = server.address() as AddressInfo
  const req = http.get({ host: '127.0.0.1', port, path, headers: { 'x-customer-id': customerId } })
  req.on('error', () => {})
  await (typeof wait === 'number' ? new Promise((resolve) => setTimeout(resolve, wait)) : wait())
  req.destroy()
}

export async function listen(app: { listen(port: number, host: string): http.Server }): Promise<http.Server> {
  const server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return server
}
