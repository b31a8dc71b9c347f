import http from 'node:http'
import https from 'node:https'

/** One HTTP exchange with Planship: the status and the whole body as text. */
export interface TransportResponse {
  status: number
  text: string
  /** The `Retry-After` header, when there was one. */
  retryAfter?: string | undefined
}

export interface TransportRequest {
  method: string
  url: string
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
export function fetchTransport(fetchImpl: typeof fetch): Transport {
  return {
    async send({ method, url, headers, body, timeoutMs, maxResponseBytes }) {
      const signal = AbortSignal.timeout(timeoutMs)
      const response = await fetchImpl(url, { method, headers, body, signal })
      const retryAfter = response.headers.get('retry-after') ?? undefined
      return { status: response.status, text: await readCapped(response, maxResponseBytes), retryAfter }
    },
    close() {},
  }
}

/**
 * The default: node:http(s) with a keep-alive pool. A usage report over the global `fetch`
 * (undici) costs several times the CPU of one over node:http, and a busy meter sends hundreds a
 * second from the app's own process (see bench/).
 */
export function nodeTransport(maxSockets: number): Transport {
  const agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets }),
    'https:': new https.Agent({ keepAlive: true, maxSockets }),
  }
  return {
    send({ method, url, headers, body, timeoutMs, maxResponseBytes }) {
      const target = new URL(url)
      const client = target.protocol === 'https:' ? https : http
      const agent = target.protocol === 'https:' ? agents['https:'] : agents['http:']
      return new Promise((resolve, reject) => {
        const request = client.request(
          target,
          { method, headers, agent, signal: AbortSignal.timeout(timeoutMs) },
          (response) => {
            const status = response.statusCode ?? 0
            const chunks: Buffer[] = []
            let bytes = 0
            if (Number(response.headers['content-length']) > maxResponseBytes) {
              request.destroy(new ResponseTooLargeError(status, maxResponseBytes))
              return
            }
            response.on('data', (chunk: Buffer) => {
              bytes += chunk.length
              if (bytes > maxResponseBytes) {
                // Stop reading and drop what was read: an oversized answer must not stay in memory.
                chunks.length = 0
                request.destroy(new ResponseTooLargeError(status, maxResponseBytes))
                return
              }
              chunks.push(chunk)
            })
            const retryAfter = response.headers['retry-after']
            response.on('end', () => resolve({ status, text: Buffer.concat(chunks).toString('utf8'), retryAfter }))
            response.on('error', reject)
          },
        )
        request.on('error', reject)
        request.end(body)
      })
    },
    close() {
      agents['http:'].destroy()
      agents['https:'].destroy()
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
