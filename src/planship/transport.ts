import { type Dispatcher, Pool } from 'undici'

/** One HTTP exchange with Planship: the status and the whole body as text. */
export interface TransportResponse {
  status: number
  text: string
  /** The `Retry-After` header, when there was one. */
  retryAfter?: string | undefined
}

export interface TransportRequest {
  method: string
  /** Appended to the transport's base URL. */
  path: string
  headers: Record<string, string>
  body: string | undefined
  timeoutMs: number
  /** Most bytes of body read; a larger answer rejects with {@link ResponseTooLargeError}. */
  maxResponseBytes: number
}

/** The answer's body was larger than allowed: it is not read further, nor kept. */
export class ResponseTooLargeError extends Error {
  override name = 'ResponseTooLargeError'
  constructor(
    readonly status: number,
    readonly limit: number,
  ) {
    super(`the answer's body is larger than ${limit} bytes`)
  }
}

/** How the client talks HTTP. Rejections are transport failures (no answer). */
export interface Transport {
  send(request: TransportRequest): Promise<TransportResponse>
  /** Frees pooled connections. */
  close(): void
}

/** Over a user-supplied `fetch` (tests, proxies, instrumentation). */
export function fetchTransport(baseUrl: string, fetchImpl: typeof fetch): Transport {
  return {
    async send({ method, path, headers, body, timeoutMs, maxResponseBytes }) {
      const signal = AbortSignal.timeout(timeoutMs)
      const response = await fetchImpl(baseUrl + path, { method, headers, body, signal })
      const retryAfter = response.headers.get('retry-after') ?? undefined
      return { status: response.status, text: await readCapped(response, maxResponseBytes), retryAfter }
    },
    close() {},
  }
}

/**
 * The default: undici's connection pool, keep-alive, at most `maxSockets` connections. A busy
 * meter sends hundreds of usage reports a second from the app's own process, so the CPU of a call
 * matters: measured on the client side (bench/report-cost.ts), a report costs ~85 µs over
 * `Pool.request`, ~115 µs over a tuned node:http and ~500 µs over the global `fetch`.
 */
export function poolTransport(baseUrl: string, maxSockets: number): Transport {
  const base = new URL(baseUrl)
  const pool = new Pool(base.origin, { connections: maxSockets, pipelining: 1 })
  const prefix = base.pathname.replace(/\/+$/, '')
  return {
    async send({ method, path, headers, body, timeoutMs, maxResponseBytes }) {
      const response = await pool.request({
        method: method as Dispatcher.HttpMethod,
        path: prefix + path,
        headers,
        body,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      })
      const status = response.statusCode
      if (Number(response.headers['content-length']) > maxResponseBytes) {
        response.body.destroy()
        throw new ResponseTooLargeError(status, maxResponseBytes)
      }
      const chunks: Buffer[] = []
      let bytes = 0
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        bytes += chunk.length
        if (bytes > maxResponseBytes) {
          // Stop reading and drop what was read: an oversized answer must not stay in memory.
          response.body.destroy()
          throw new ResponseTooLargeError(status, maxResponseBytes)
        }
        chunks.push(chunk)
      }
      const retryAfter = response.headers['retry-after']
      const text = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8')
      return { status, text, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined }
    },
    close() {
      pool.destroy().catch(() => {})
    },
  }
}

/** Reads a fetch response's body as text, refusing past `limit` bytes without buffering the rest. */
async function readCapped(response: Response, limit: number): Promise<string> {
  const declared = Number(response.headers.get('content-length'))
  if (declared > limit) {
    await response.body?.cancel()
    throw new ResponseTooLargeError(response.status, limit)
  }
  if (response.body === null) return ''
  const chunks: Uint8Array[] = []
  let bytes = 0
  for await (const chunk of response.body) {
    bytes += chunk.length
    if (bytes > limit) {
      await response.body.cancel().catch(() => {})
      throw new ResponseTooLargeError(response.status, limit)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}
