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
    async send({ method, url, headers, body, timeoutMs }) {
      const signal = AbortSignal.timeout(timeoutMs)
      const response = await fetchImpl(url, { method, headers, body, signal })
      const retryAfter = response.headers.get('retry-after') ?? undefined
      return { status: response.status, text: await response.text(), retryAfter }
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
    send({ method, url, headers, body, timeoutMs }) {
      const target = new URL(url)
      const client = target.protocol === 'https:' ? https : http
      const agent = target.protocol === 'https:' ? agents['https:'] : agents['http:']
      return new Promise((resolve, reject) => {
        const request = client.request(
          target,
          { method, headers, agent, signal: AbortSignal.timeout(timeoutMs) },
          (response) => {
            let text = ''
            response.setEncoding('utf8')
            response.on('data', (chunk: string) => (text += chunk))
            const retryAfter = response.headers['retry-after']
            response.on('end', () => resolve({ status: response.statusCode ?? 0, text, retryAfter }))
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
