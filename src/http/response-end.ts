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
 * Settles `hold` once `res` is over, never before: 'close' comes after the last byte was handed
 * to the OS (`writableFinished`), or when the connection ended first. Usage is read then, so a
 * streamed body is billed for what it streamed. Returns what the adapter tells it of its handler.
 */
export function settleWhenOver<A extends unknown[]>(
  gate: Gate,
  log: Log,
  route: ResolvedConsume<A>,
  args: A,
  res: ServerResponse,
  hold: ReservationHold,
): HandlerProgress {
  const progress: HandlerProgress = { done: false, failedBeforeResponse: false }
  const over = () => {
    const end = { complete: res.writableFinished, started: res.headersSent, handlerDone: progress.done }
    const bills = !progress.failedBeforeResponse && billsAtEnd(end, gate.onAbort(route))
    // A client gone mid-handler left no response whose status `shouldReport` could judge.
    const judged = end.complete || end.started || end.handlerDone
    const usage = bills && (!judged || route.shouldReport(args)) ? route.usage(args, hold.reserved) : undefined
    const settling = hold.settle(usage)
    if (isPromiseLike(settling))
      Promise.resolve(settling).catch((error: unknown) => log.error('settling a reservation failed', { error }))
  }
  // The connection may have closed while the decision waited (a cold cache, an async identify
  // or store): 'close' has fired already and will not again.
  if (res.closed || res.socket?.destroyed === true) over()
  else res.once('close', over)
  return progress
}

/** What the adapter knows of the handler: Koa's resolves or rejects; Express's says nothing. */
export interface HandlerProgress {
  done: boolean
  /** It threw before any of the response was written: the work failed, nothing is billed. */
  failedBeforeResponse: boolean
}
