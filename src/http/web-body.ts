/**
 * When a fetch-API response body is over, for runtimes that hand the app no Node response to
 * watch (Hono's `app.request()`, Bun, Deno, Workers): the body is wrapped in a stream that
 * pulls from the original one and says how it ended.
 */

/** How a watched body ended: `complete` when its last chunk was read, `started` when any chunk was. */
export interface BodyEnd {
  complete: boolean
  started: boolean
}

/**
 * A stream with the chunks of `body` that calls `over` once: when the runtime read its end
 * (complete), when it cancelled it (the client is gone), or when `body` failed mid-way.
 */
export function watchBody(body: ReadableStream<Uint8Array>, over: (end: BodyEnd) => void): ReadableStream<Uint8Array> {
  const reader = body.getReader()
  let started = false
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: Awaited<ReturnType<typeof reader.read>>
      try {
        chunk = await reader.read()
      } catch (error) {
        over({ complete: false, started })
        throw error // errors the wrapping stream as the original one failed
      }
      if (chunk.done) {
        controller.close()
        over({ complete: true, started: true })
      } else {
        started = true
        controller.enqueue(chunk.value)
      }
    },
    cancel(reason) {
      over({ complete: false, started })
      return reader.cancel(reason)
    },
  })
}
