import type { Context, Middleware, Next } from 'koa'
import { isPromiseLike, type MaybePromise } from '../enforcement/store.js'
import { denialBody } from '../http/denial.js'
import type { Gate, Verdict } from '../http/gate.js'
import { wrongFramework } from '../http/framework.js'
import { identifyRequest } from '../http/identify.js'
import { type FeatureOptions, type RouteConsumeOptions, validateConsume, validateFeature } from '../http/route.js'
import { ReservationHold } from '../http/reservation.js'
import { clientGone, settleAt, settleWhenOver } from '../http/response-end.js'
import type { PlanshipRequestState } from '../http/state.js'
import { STATUS_HEADERS, statusAnswer } from '../http/status-route.js'
import type { CustomerStatus } from '../enforcement/status.js'
import type { Log } from '../log.js'
import type { HttpMeterOptions, Identify } from '../options.js'
import type { PlanshipState } from './state.js'

/** Per-route options of `consume()` on Koa: the callbacks get `ctx`. */
export type ConsumeOptions = RouteConsumeOptions<[ctx: Context]>
export type { FeatureOptions }

export interface KoaAdapterConfig {
  identify: Identify<[ctx: Context]>
  onDenied: HttpMeterOptions<[ctx: Context]>['onDenied']
  gate: Gate
  log: Log
  status: (customerId: string) => Promise<CustomerStatus>
}

type Ctx = Context & { state: Partial<PlanshipState> }

/** The request's state, in `ctx.state` for the middleware after this one and the handler. */
const keep = ([ctx]: [ctx: Ctx], state: PlanshipRequestState) => {
  ctx.state.planship = state
}
type Denied = Extract<Verdict, { allowed: false }>

const succeeded = ([ctx]: [Context]) => ctx.status < 400

/**
 * Node's own `setHeader`: Koa's `ctx.set` builds arrays per call (`Object.entries`, `map`),
 * which is most of what the headers would cost on every metered response.
 */
function setHeaders(ctx: Context, headers: Record<string, string>): void {
  if (ctx.headerSent) return
  for (const name in headers) ctx.res.setHeader(name, headers[name]!)
}

/** A body Koa's `respond` writes with one `res.end()`: JSON, a string, a buffer, nothing. */
function writtenAtOnce(body: unknown): boolean {
  if (body === null || body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) return true
  if (typeof body !== 'object') return false
  const prototype = Object.getPrototypeOf(body) as unknown
  return prototype === Object.prototype || prototype === Array.prototype || prototype === null
}

/** The thin Koa layer over the shared gate: identify, consume, requireFeature. */
export function createKoaAdapter(config: KoaAdapterConfig) {
  const { gate, log } = config

  /** The denial's status and headers first, so that a custom `onDenied` writing only a body keeps them. */
  async function deny(ctx: Context, { denial }: Denied): Promise<void> {
    ctx.status = denial.status
    ctx.set(denial.headers)
    if (config.onDenied === undefined) ctx.body = denialBody(denial)
    else await config.onDenied(ctx, denial)
  }

  /** The request's identification, done once per request; synchronous when `identify` is. */
  function identify(ctx: Ctx): MaybePromise<PlanshipRequestState> {
    if (ctx.state === undefined) throw wrongFramework('koa', ctx) // mounted on Express: name the right import
    if (ctx.state.planship !== undefined) return ctx.state.planship
    return identifyRequest(config.identify, [ctx], log, keep)
  }

  return {
    middleware(): Middleware<PlanshipState> {
      // Not async: with a synchronous identify, this layer adds no promise of its own.
      return function planshipIdentify(ctx, next) {
        const state = identify(ctx)
        return isPromiseLike(state) ? Promise.resolve(state).then(() => next()) : next()
      }
    },

    consume(meteringId: string, options: ConsumeOptions = {}): Middleware<PlanshipState> {
      const route = validateConsume(meteringId, options, log, succeeded)

      /**
       * The reservation is settled once the response is over: Koa writes the body, a stream
       * included, after the handler's promise resolved. A body Koa writes in one go is over as
       * soon as it is written, so it needs no listener (the plain JSON route stays as cheap as
       * before); a stream is settled on the response's 'finish' or 'close'. A client gone while
       * the handler ran is seen when it returns (released, as nothing was written), except under
       * `onAbort: 'bill'`, which bills the usage read the moment the client left. A handler that
       * threw before any of the response was written is not billed.
       */
      function admit(ctx: Ctx, next: Next, args: [Context], state: PlanshipRequestState, verdict: Verdict) {
        if (!verdict.allowed) return deny(ctx, verdict)
        if (verdict.headers !== undefined) setHeaders(ctx, verdict.headers)
        const res = ctx.res
        const hold = new ReservationHold(gate, verdict.reservation, route, state.decisions, res)
        state.reservations[meteringId] = hold
        if (verdict.reservation === undefined) return next()
        const listening = gate.onAbort(route) === 'bill'
        if (listening) settleWhenOver(gate, log, route, args, res, hold, false)
        return next().then(
          () => {
            if (ctx.respond === false || !writtenAtOnce(ctx.body)) {
              if (!listening) settleWhenOver(gate, log, route, args, res, hold, true)
              return
            }
            // Gone already: it left while the handler ran, before any of the response was written.
            const gone = clientGone(res)
            settleAt(gate, log, route, args, hold, { complete: !gone, started: res.headersSent, handlerDone: !gone })
          },
          (error: unknown) => {
            if (!res.headersSent) {
              const failed = { complete: false, started: false, handlerDone: true, failed: true }
              settleAt(gate, log, route, args, hold, failed)
            } else if (!listening) settleWhenOver(gate, log, route, args, res, hold, true)
            throw error
          },
        )
      }

      function decide(ctx: Ctx, next: Next, state: PlanshipRequestState): Promise<void> {
        const args: [Context] = [ctx]
        const deciding = gate.route(state, route, args)
        return isPromiseLike(deciding)
          ? Promise.resolve(deciding).then((verdict) => admit(ctx, next, args, state, verdict))
          : admit(ctx, next, args, state, deciding)
      }

      // Not async: on a warm cache the decision is synchronous, and this layer adds no promise
      // of its own before the handler runs.
      return function planshipConsume(ctx: Ctx, next: Next) {
        const identifying = identify(ctx)
        return isPromiseLike(identifying)
          ? Promise.resolve(identifying).then((state) => decide(ctx, next, state))
          : decide(ctx, next, identifying)
      }
    },

    requireFeature(lever: string, options: FeatureOptions = {}): Middleware<PlanshipState> {
      validateFeature(lever, options)
      return async function planshipRequireFeature(ctx: Ctx, next: Next) {
        const identifying = identify(ctx)
        const state = isPromiseLike(identifying) ? await identifying : identifying
        const deciding = gate.feature(state, lever, options)
        const verdict = isPromiseLike(deciding) ? await deciding : deciding
        if (!verdict.allowed) return deny(ctx, verdict)
        return next()
      }
    },

    /** Answers with the identified customer's status (a route's end: `next` is not called). */
    statusRoute(): Middleware<PlanshipState> {
      return async function planshipStatus(ctx: Ctx) {
        const identifying = identify(ctx)
        const state = isPromiseLike(identifying) ? await identifying : identifying
        const answer = await statusAnswer(state, config.status)
        if (!answer.allowed) return deny(ctx, answer)
        ctx.status = 200
        ctx.set(STATUS_HEADERS)
        ctx.body = answer.body
      }
    },
  }
}
