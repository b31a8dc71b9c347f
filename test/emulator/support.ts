import { Planship } from '@planship/fetch'
import { type Emulator, startEmulator } from '../../src/emulator/index.js'

/** The official SDK, unchanged, pointed at the emulator. */
export function sdk(emu: Emulator, productSlug = emu.productSlug): Planship {
  return new Planship(productSlug, { clientId: emu.clientId, clientSecret: emu.clientSecret }, { baseUrl: emu.url })
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`
}

export interface RawResponse {
  status: number
  headers: Headers
  body: unknown
  text: string
}

/** A plain HTTP call, for what the SDK cannot send (bad bodies, stale tokens, admin routes). */
export async function raw(
  emu: Emulator,
  method: string,
  path: string,
  init: { token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = { ...init.headers }
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`
  let body: string | undefined = init.rawBody
  if (init.body !== undefined) {
    body = JSON.stringify(init.body)
    headers['content-type'] = 'application/json'
  }
  const response = await fetch(`${emu.url}${path}`, { method, headers, body })
  const text = await response.text()
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    parsed = undefined
  }
  return { status: response.status, headers: response.headers, body: parsed, text }
}

export async function getToken(emu: Emulator): Promise<string> {
  const response = await raw(emu, 'POST', '/api/v1/auth/token', {
    headers: { authorization: basic(emu.clientId, emu.clientSecret) },
  })
  if (response.status !== 200) throw new Error(`token request failed: ${response.status}`)
  return (response.body as { access_token: string }).access_token
}

/** The HTTP status of a rejected SDK call (`ResponseError.response.status`). */
export async function statusOf(promise: Promise<unknown>): Promise<number> {
  try {
    await promise
  } catch (error) {
    const response = (error as { response?: Response }).response
    if (response !== undefined) return response.status
    throw error
  }
  throw new Error('expected the call to fail')
}

/** One emulator for a describe block, back to its fixture state before each test. */
export function useEmulator(assign: (emu: Emulator) => void): void {
  let current: Emulator | undefined
  before(async () => {
    current = await startEmulator()
    assign(current)
  })
  after(() => current?.close())
  beforeEach(() => current?.reset())
}
