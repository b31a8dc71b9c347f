import type { ServerResponse } from 'node:http'
import { isPromiseLike } from '../enforcement/store.js'
import type { Log } from '../log.js'
import type { Gate } from './gate.js'
import type { ReservationHold } from './reservation.js'
import type { ResolvedConsume } from './route.js'

/** What to do when the client goes away before the response was fully written. */
export type AbortPolicy = 'bill' | 'release'

/** How a response ended, as the adapter saw it. */
export interface ResponseEnd {
  /** Every byte was handed to the OS. */
  complete: boolean
  /** The status line and headers went out (the response had started). */
  started: boolean
  /** The handler had finished its work (its promise resolved, on Koa) when the client left. */
  handlerDone: boolean
  /** The handler failed before any of the response was written: the work did not happen. */
  failed?: boolean
}

/**
 * Whether a response that is over is billed, under the route's `onAbort` (`undefined`: the
 * default rule). A complete response is. A client gone mid-response is billed under `'bill'`,
 * released under `'release'`, and by default billed when the response had started or the
 * handler had finished (what was delivered, for a handler counting what it sent), released
 * when it left before anything was written.
 */
export function billsAtEnd(end: ResponseEnd, onAbort: AbortPolicy | undefined): boolean {
  if (end.complete || onAbort === 'bill') return true
  return onAbort === undefined && (end.started || end.handlerDone)
}

/**
 * Settles `hold` for a response that is over, or about to be: usage is read now. `end` says how
 * it ended; a client gone before `handlerDone` left before any of it was written.
 */
export function settleAt<A extends unknown[]>(
  gate: Gate,
  log: Log,
  route: ResolvedConsume<A>,
  args: A,
  hold: ReservationHold,
  end: ResponseEnd,
): void {
  if (!hold.open) return // 'finish', then 'close'
  const bills = end.failed !== true && billsAtEnd(end, gate.onAbort(route))
  // A client gone mid-handler left no response whose status `shouldReport` could judge.
  const judged = end.complete || end.started || end.handlerDone
  const usage = bills && (!judged || route.shouldReport(args)) ? route.usage(args, hold.reserved) : undefined
  const settling = hold.settle(usage)
  if (isPromiseLike(settling))
    Promise.resolve(settling).catch((error: unknown) => log.error('settling a reservation failed', { error }))
}

/** The parts of an `Http2Stream` read here. */
interface Http2StreamEnd {
  destroyed: boolean
  /** It closed before the server had ended its side: a client gone mid-response. */
  aborted: boolean
  /** RST_STREAM's code, final once the stream closed. */
  rstCode: number
  once(event: 'close', listener: () => void): unknown
}

/**
 * The stream of Node's HTTP/2 compatibility response, `undefined` on HTTP/1.1. That response has
 * no `closed`, its socket is the whole session's (which a stream the client cancels leaves open),
 * and it says `writableFinished` of a stream reset mid-response too: its stream tells how the
 * response ended.
 */
function http2Stream(res: ServerResponse): Http2StreamEnd | undefined {
  const stream = (res as { stream?: Partial<Http2StreamEnd> }).stream
  return typeof stream?.rstCode === 'number' ? (stream as Http2StreamEnd) : undefined
}

/** RST_STREAM's code of a stream that closed as it should (RFC 9113 §7); a client cancelling sends CANCEL. */
const NGHTTP2_NO_ERROR = 0

/**
 * Whether the client of `res` is gone (its connection, or its HTTP/2 stream, closed before the
 * response finished). The cheap reads first: a connected client, the case of every request,
 * never reaches `writableFinished`, a getter of several reads through the response's prototype chain.
 */
export function clientGone(res: ServerResponse): boolean {
  if (res.closed || res.socket?.destroyed === true) return !completed(res)
  return http2Stream(res)?.destroyed === true && !completed(res)
}

/**
 * Whether every byte of `res` was handed on: to the OS, or on HTTP/2 to a stream that closed
 * without error, or that the client cancelled only once the response had ended and gone out (its
 * own side still open, an upload's). Node ends a cancelled stream itself, `writableFinished`
 * then says nothing; `aborted` tells. A HEAD stream is ended when it opens: only its close code tells.
 */
function completed(res: ServerResponse): boolean {
  if (!res.writableFinished) return false
  const stream = http2Stream(res)
  if (stream === undefined) return true
  if (!res.writableEnded) return false
  return stream.rstCode === NGHTTP2_NO_ERROR || (!stream.aborted && res.req?.method !== 'HEAD')
}

/**
 * Settles `hold` once `res` is over, never before: 'finish' when the last byte was handed to the
 * OS (`writableFinished`), 'close' alone when the connection ended first. Usage is read then, so
 * a streamed body is billed for what it streamed. `handlerDone`: the handler had finished.
 */
export function settleWhenOver<A extends unknown[]>(
  gate: Gate,
  log: Log,
  route: ResolvedConsume<A>,
  args: A,
  res: ServerResponse,
  hold: ReservationHold,
  handlerDone: boolean,
): void {
  // It may be over already: the connection closed while the decision waited (a cold cache, an
  // async identify or store), or the handler wrote the whole response itself.
  if (completed(res) || clientGone(res)) return settleAt(gate, log, route, args, hold, endOf(res, handlerDone))
  // One unnamed closure per request: bundlers that keep function names (tsx, esbuild's
  // keepNames) add a `__name()` call to every named one, each time it is created.
  listenUntilOver(res, () => settleAt(gate, log, route, args, hold, endOf(res, handlerDone)))
}

/** How `res` ended, read when it is over. */
function endOf(res: ServerResponse, handlerDone: boolean): ResponseEnd {
  return { complete: completed(res), started: res.headersSent, handlerDone }
}

/**
 * A server emits 'close' after 'finish' too; a response outside one (an in-process test
 * harness, a serverless adapter) may only finish. An HTTP/2 response to HEAD whose client cancels
 * before it ended emits neither until the handler ends it (Node ties them to the stream's close,
 * and skips them there for HEAD): its stream's close is watched too.
 */
function listenUntilOver(res: ServerResponse, over: () => void): void {
  res.on('finish', over)
  res.on('close', over)
  http2Stream(res)?.once('close', over)
}
