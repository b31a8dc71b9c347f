import type { ServerResponse } from 'node:http'
import type { Context } from 'koa'

/** A comment line every so often keeps proxies and browsers from dropping an idle stream. */
const HEARTBEAT_MS = 15_000
/** A client this far behind (it stopped reading) is dropped rather than buffered for without end. */
const MAX_BUFFERED_BYTES = 1024 * 1024

/**
 * Server-Sent Events for the console (`GET /_emulator/events`): every open stream gets every
 * published event. {@link EventFeed.close} ends them all, so that an open console never keeps the
 * emulator from closing.
 */
export class EventFeed {
  private readonly clients = new Set<ServerResponse>()
  private heartbeat: NodeJS.Timeout | undefined
  private closed = false

  /** Answers the request with an event stream that stays open until the client or the feed closes it. */
  open(ctx: Context): void {
    // Written to the response directly: piped through Koa, every client that goes away would be
    // reported as a premature-close error.
    ctx.respond = false
    const res = ctx.res
    // An event stream is idle most of the time: no socket timeout, no Nagle delay on small events.
    ctx.req.socket.setTimeout(0)
    ctx.req.socket.setNoDelay(true)
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
    })
    if (this.closed) {
      res.end()
      return
    }
    // Tells EventSource how soon to reconnect after the emulator restarts.
    res.write('retry: 1000\n\n')
    this.clients.add(res)
    res.once('close', () => this.drop(res))
    this.heartbeat ??= setInterval(() => this.write(': heartbeat\n\n'), HEARTBEAT_MS).unref()
  }

  /** Sends `data` as JSON in an event named `event` to every open stream. */
  publish(event: string, data: unknown): void {
    if (this.clients.size === 0) return
    this.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
  }

  /** How many streams are open. */
  get size(): number {
    return this.clients.size
  }

  /**
   * Ends every stream and refuses new ones (they are answered and ended at once). Resolves once
   * the ends were handed to the OS, so that clients see a clean end rather than a cut connection.
   */
  async close(): Promise<void> {
    this.closed = true
    const ending = [...this.clients].map((res) => {
      const done = new Promise<void>((resolve) => {
        res.once('finish', resolve)
        res.once('close', resolve)
      })
      this.drop(res)
      return done
    })
    await Promise.all(ending)
  }

  private write(chunk: string): void {
    for (const res of this.clients) {
      if (res.writableLength > MAX_BUFFERED_BYTES) this.drop(res)
      else res.write(chunk)
    }
  }

  private drop(res: ServerResponse): void {
    this.clients.delete(res)
    if (!res.writableEnded) res.end()
    if (this.clients.size === 0 && this.heartbeat !== undefined) {
      clearInterval(this.heartbeat)
      this.heartbeat = undefined
    }
  }
}
