import type { Request, RequestHandler, Response } from 'express'
import type { ParamsDictionary, Query } from 'express-serve-static-core'
import { isPromiseLike, type MaybePromise } from '../enforcement/store.js'
import { denialBody } from '../http/denial.js'
import type { Gate, Verdict } from '../http/gate.js'
import { wrongFramework } from '../http/framework.js'
import { identifyRequest } from '../http/identify.js'
import { ReservationHold } from '../http/reservation.js'
import { clientGone, settleAt, settleWhenOver } from '../http/response-end.js'
import { type FeatureOptions, type RouteConsumeOptions, validateConsume, validateFeature } from '../http/route.js'
import type { PlanshipRequestState } from '../http/state.js'
import { STATUS_HEADERS, statusAnswer } from '../http/status-route.js'
import type { CustomerStatus } from '../enforcement/status.js'
import type { Log } from '../log.js'
import type { HttpMeterOptions, Identify } from '../options.js'
import type { PlanshipLocals } from './state.js'

/** What Express hands every callback. */
export type ExpressArgs = [req: Request, res: Response]

/** Per-route options of `consume()` on Express: the callbacks get `(req, res)`. */
export type ConsumeOptions = RouteConsumeOptions<ExpressArgs>
export type { FeatureOptions }

/** A handler that leaves `res.locals.planship` set, so later handlers in its chain see it typed. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type PlanshipHandler = RequestHandler<ParamsDictionary, any, any, Query, PlanshipLocals>

export interface ExpressAdapterConfig {
  identify: Identify<ExpressArgs>
  onDenied: HttpMeterOptions<ExpressArgs>['onDenied']
  gate: Gate
  log: Log
  status: (customerId: string) => Promise<CustomerStatus>
}

type Denied = Extract<Verdict, { allowed: false }>
/** The response as the adapter's own steps see it: `res.locals.planship` may not be set yet. */
type Res = Response

/** The request's state, in `res.locals` for the layers after this one and the handler. */
const keep = ([, res]: ExpressArgs, state: PlanshipRequestState) => {
  res.locals.planship = state
}
type Next = (error?: unknown) => void

const succeeded = ([, res]: ExpressArgs) => res.statusCode < 400

/**
 * Node's own `setHeader`: Express's `res.set(object)` calls `res.set` again per header, which
 * coerces the value, checks for Content-Type and re-validates, most of what the RateLimit
 * headers would cost on every metered response. Ours are plain strings, never Content-Type.
 */
function setHeaders(res: Res, headers: Record<string, string>): void {
  for (const name in headers) res.setHeader(name, headers[name]!)
}

/** Mounted on Koa, a middleware gets `(ctx, next)`: no `res.locals`. Name the right import. */
function checkFramework(req: Request, res: Res): void {
  if (res.locals === undefined) throw wrongFramework('express', req)
}

/**
 * The thin Express layer over the shared gate: identify, consume, requireFeature. No layer is
 * `async`: on a warm cache with a synchronous `identify` the decision is synchronous, so a
 * metered request costs no promise of ours before the handler; a promise (an async identify or
 * store, a cold cache) continues the same steps once it settles, and whatever our steps throw
 * or reject with goes to Express's error handling.
 */
export function createExpressAdapter(config: ExpressAdapterConfig) {
  const { gate, log } = config

  /** Status and headers first, so that a custom `onDenied` writing only a body keeps them. */
  async function deny(req: Request, res: Res, { denial }: Denied): Promise<void> {
    res.status(denial.status).set(denial.headers)
    if (config.onDenied !== undefined) await config.onDenied(req, res, denial)
    // A custom answer that wrote nothing still answers, with the contract's body.
    if (!res.headersSent) res.json(denialBody(denial))
  }

  /** The request's identification, done once per request; synchronous when `identify` is. */
  function identify(req: Request, res: Res): MaybePromise<PlanshipRequestState> {
    const known = res.locals.planship
    if (known !== undefined) return known
    return identifyRequest(config.identify, [req, res], log, keep)
  }

  /** Runs `step` with the request's state, now when it is known, else once identified. */
  function withState(
    req: Request,
    res: Res,
    next: Next,
    step: (req: Request, res: Res, next: Next, state: PlanshipRequestState) => void,
  ): void {
    const identifying = identify(req, res)
    if (isPromiseLike(identifying)) Promise.resolve(identifying).then((state) => step(req, res, next, state), next)
    else step(req, res, next, identifying)
  }

  /** Runs `then` with the verdict, now when it is decided, else once it is. */
  function withVerdict(
    req: Request,
    res: Res,
    next: Next,
    deciding: MaybePromise<Verdict>,
    then: (req: Request, res: Res, next: Next, verdict: Verdict) => void,
  ): void {
    if (isPromiseLike(deciding)) Promise.resolve(deciding).then((verdict) => then(req, res, next, verdict), next)
    else then(req, res, next, deciding)
  }

  /** A route's layer: `decide` with the request's state; what our steps throw goes to Express. */
  function routeLayer(
    decide: (req: Request, res: Res, next: Next, state: PlanshipRequestState) => void,
  ): PlanshipHandler {
    return function planshipRoute(req, res, next) {
      checkFramework(req, res as Res)
      try {
        withState(req, res as Res, next, decide)
      } catch (error) {
        next(error)
      }
    }
  }

  /** The identified customer's status, or the denial that stands for it (401, 503). */
  async function answerStatus(req: Request, res: Res): Promise<void> {
    const identifying = identify(req, res)
    const state = isPromiseLike(identifying) ? await identifying : identifying
    const answer = await statusAnswer(state, config.status)
    if (!answer.allowed) return deny(req, res, answer)
    res.status(200).set(STATUS_HEADERS).json(answer.body)
  }

  function denied(req: Request, res: Res, next: Next, verdict: Denied): void {
    deny(req, res, verdict).catch(next)
  }

  return {
    middleware(): PlanshipHandler {
      return function planshipIdentify(req, res, next) {
        checkFramework(req, res as Res)
        let identifying: MaybePromise<PlanshipRequestState>
        try {
          identifying = identify(req, res as Res)
        } catch (error) {
          return next(error)
        }
        if (isPromiseLike(identifying)) Promise.resolve(identifying).then(() => next(), next)
        else next()
      }
    },

    consume(meteringId: string, options: ConsumeOptions = {}): PlanshipHandler {
      const route = validateConsume(meteringId, options, log, succeeded)
      // Known at definition: a route that releases aborted responses must see how each one ends.
      const listens = gate.onAbort(route) === 'release'

      /**
       * Admitted: the headers, the hold, then the rest of the chain. Express handlers return no
       * promise of their work, so the response's end is all there is: a handler that answered
       * before `next()` returned (res.json() in the route, the common case) wrote its whole
       * response at once and is settled then, with no listener (as the Koa adapter does with a
       * body Koa writes at once); any other response is settled on its 'finish' or 'close'.
       * The outcome is the one 'finish' would give: an ended response has started, so it is
       * billed unless `shouldReport` says not, under either `onAbort` but `'release'`, whose
       * routes keep listening to see a client gone before the last byte.
       */
      function admit(
        req: Request,
        res: Res,
        next: Next,
        args: ExpressArgs,
        state: PlanshipRequestState,
        verdict: Verdict,
      ) {
        if (!verdict.allowed) return denied(req, res, next, verdict)
        if (verdict.headers !== undefined) setHeaders(res, verdict.headers)
        const hold = new ReservationHold(gate, verdict.reservation, route, state.decisions, res)
        state.reservations[meteringId] = hold
        if (verdict.reservation === undefined) return next()
        // Gone already (while a cold decision waited): released at once, as nothing was written.
        if (listens || clientGone(res)) {
          settleWhenOver(gate, log, route, args, res, hold, false)
          return next()
        }
        next()
        if (res.writableEnded) {
          settleAt(gate, log, route, args, hold, {
            complete: !clientGone(res),
            started: res.headersSent,
            handlerDone: true,
          })
        } else settleWhenOver(gate, log, route, args, res, hold, false)
      }

      function decide(req: Request, res: Res, next: Next, state: PlanshipRequestState): void {
        const args: ExpressArgs = [req, res]
        const deciding = gate.route(state, route, args)
        if (isPromiseLike(deciding))
          Promise.resolve(deciding).then((verdict) => admit(req, res, next, args, state, verdict), next)
        else admit(req, res, next, args, state, deciding)
      }

      return routeLayer(decide)
    },

    requireFeature(lever: string, options: FeatureOptions = {}): PlanshipHandler {
      validateFeature(lever, options)
      const pass = (req: Request, res: Res, next: Next, verdict: Verdict) =>
        verdict.allowed ? next() : denied(req, res, next, verdict)
      const decide = (req: Request, res: Res, next: Next, state: PlanshipRequestState) =>
        withVerdict(req, res, next, gate.feature(state, lever, options), pass)
      return routeLayer(decide)
    },

    /** Answers with the identified customer's status (a route's end: `next` is not called). */
    statusRoute(): PlanshipHandler {
      return function planshipStatus(req, res, next) {
        checkFramework(req, res as Res)
        answerStatus(req, res as Res).catch(next)
      }
    },
  }
}
