/**
 * A fake language model and the SSE stream of a completion, shared by the Koa and Express
 * versions: it holds room for each token before sending it, extending the reservation in
 * blocks, and ends with a `quota_exceeded` event when the plan has no more.
 */
import type { Fixture } from '../../src/emulator/index.js'
import type { MeteredReservation } from '../../src/index.js'

/** Tokens reserved before the first one is generated, and the block each extension asks for. */
export const ESTIMATE = 64

/** A product selling tokens: 200 a month on `free`, 100 000 on `pro`. */
export const llmFixture: Fixture = {
  credentials: [{ clientId: 'llm-client-id', clientSecret: 'llm-client-secret' }],
  products: [
    {
      slug: 'llm-api',
      levers: [{ slug: 'tokens', type: 'metered', meteringIds: ['tokens'], period: 'subscription' }],
      plans: [
        { slug: 'free', entitlements: { tokens: 200 } },
        { slug: 'pro', entitlements: { tokens: 100_000 } },
      ],
    },
  ],
  customers: [
    { alternativeId: 'free-customer', subscriptions: [{ product: 'llm-api', plan: 'free' }] },
    { alternativeId: 'pro-customer', subscriptions: [{ product: 'llm-api', plan: 'pro' }] },
  ],
}

/** The fake model: `maxTokens` words, one every `delayMs`. */
export async function* fakeModel(prompt: string, maxTokens: number, delayMs: number): AsyncGenerator<string> {
  const words = `${prompt} is a fine question and here is a long answer to it`.split(' ')
  for (let i = 0; i < maxTokens; i++) {
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs))
    yield `${words[i % words.length]} `
  }
}

/**
 * Room for one more token: the reservation's, else an extension by a block, halved while the
 * quota has less left, so the stream stops at exactly the quota.
 */
async function roomForOne(reservation: MeteredReservation, sent: number): Promise<boolean> {
  if (sent < reservation.reserved) return true
  for (let units = ESTIMATE; units >= 1; units = Math.floor(units / 2)) {
    if (await reservation.extend(units)) return true
  }
  return false
}

/** What a completion request asks for. */
export interface CompletionRequest {
  prompt: string
  maxTokens: number
  delayMs: number
}

export function completionRequest(query: URLSearchParams): CompletionRequest {
  const number = (name: string, fallback: number, max: number) => {
    const value = Number(query.get(name) ?? fallback)
    return Number.isSafeInteger(value) && value >= 0 ? Math.min(value, max) : fallback
  }
  return {
    prompt: (query.get('prompt') ?? 'Metering').slice(0, 200),
    maxTokens: number('max_tokens', 100, 10_000),
    delayMs: number('delay_ms', 20, 1_000),
  }
}

/**
 * The completion's SSE events. `sent.tokens` counts what was handed to the response: what the
 * route bills, read when the response is over (the client may leave mid-way).
 */
export async function* completionEvents(
  request: CompletionRequest,
  reservation: MeteredReservation,
  sent: { tokens: number },
): AsyncGenerator<string> {
  for await (const token of fakeModel(request.prompt, request.maxTokens, request.delayMs)) {
    if (!(await roomForOne(reservation, sent.tokens))) {
      yield `event: quota_exceeded\ndata: ${JSON.stringify({ tokens: sent.tokens })}\n\n`
      return
    }
    sent.tokens++
    yield `data: ${JSON.stringify({ token })}\n\n`
  }
  yield `event: done\ndata: ${JSON.stringify({ tokens: sent.tokens })}\n\n`
}
