import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { ParamsDictionary, Query } from 'express-serve-static-core'
import { isPromiseLike, type MaybePromise, type Reservation } from '../enforcement/store.js'
import { denialBody } from '../http/denial.js'
import type { Gate, Verdict } from '../http/gate.js'
import { identifyCustomer } from '../http/identify.js'
import {
  type FeatureOptions,
  type ResolvedConsume,
  type RouteConsumeOptions,
  validateConsume,
  validateFeature,
} from '../http/route.js'
import type { PlanshipRequestState } from '../http/state.js'
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
}

type Denied = Extract<Verdict, { allowed: false }>

const succeeded = ([, res]: ExpressArgs) => res.statusCode < 400

const req = (args: ExpressArgs) => args[0]

/** The thin Express layer over the shared gate: identify, consume, requireFeature. */
export function createExpressAdapter(config: ExpressAdapterConfig) {
  const { gate, log } = config

  /** Status and headers first, so that a custom `onDenied` writing only a body keeps them. */
  async function deny(req: Request, res: Response, { denial }: Denied): Promise<void> {
    res.status(denial.status).set(denial.headers)
    if (config.onDenied !== undefined) await config.onDenied(req, res, denial)
    // A custom answer that wrote nothing still answers, with the contract's body.
    if (!res.headersSent) res.json(denialBody(denial))
  }

  /** The request's identification, done once per request; synchronous when `identify` is. */
  function identify(req: Request, res: Response): MaybePromise<PlanshipRequestState> {
    const known = res.locals.planship
    if (known !== undefined) return known
    const identifying = identifyCustomer(config.identify, [req, res], log)
    const identified = (customerId: string | undefined) => (res.locals.planship = { customerId, decisions: [] })
    return isPromiseLike(identifying) ? Promise.resolve(identifying).then(identified) : identified(identifying)
  }

  /**
   * Settles the reservation once the response is over, never before: Express handlers do not
   * return a promise of their work. 'finish' means the response was handed to the OS: reported
   * when `shouldReport` holds. 'close' alone means the connection ended first: when the handler
   * had ended the response (`res.end()` was called) the work was done and is reported like a
   * finished one; otherwise the client gave up mid-way and the reservation is released.
   */
  function settleAfterResponse(args: ExpressArgs, route: ResolvedConsume<ExpressArgs>, reservation: Reservation) {
    const res = args[1]
    let settled = false
    const settle = () => {
      if (settled) return
      settled = true
      res.off('finish', settle)
      res.off('close', settle)
      const done = res.writableFinished || res.writableEnded
      const usage = done && route.shouldReport(args) ? route.usage(args, reservation.cost) : undefined
      const settling = gate.settle(reservation, usage)
      if (isPromiseLike(settling))
        Promise.resolve(settling).catch((error: unknown) => log.error('settling a reservation failed', { error }))
    }
    res.once('finish', settle)
    res.once('close', settle)
    // The connection may have closed while the decision waited (a cold cache, an async identify
    // or store): 'close' has fired already and will not again.
    if (res.closed || res.writableFinished || req(args).socket?.destroyed === true) settle()
  }

  /** Runs an async step of a middleware; whatever it throws goes to Express's error handling. */
  const guarded =
    (step: (req: Request, res: Response, next: NextFunction) => Promise<void>): PlanshipHandler =>
    (req, res, next) => {
      step(req, res as unknown as Response, next).catch(next)
    }

  return {
    middleware(): PlanshipHandler {
      return guarded(async (req, res, next) => {
        const state = identify(req, res)
        if (isPromiseLike(state)) await state
        next()
      })
    },

    consume(meteringId: string, options: ConsumeOptions = {}): PlanshipHandler {
      const route = validateConsume(meteringId, options, log, succeeded)
      return guarded(async (req, res, next) => {
        const identifying = identify(req, res)
        const state = isPromiseLike(identifying) ? await identifying : identifying
        const args: ExpressArgs = [req, res]
        const deciding = gate.route(state, route, args)
        const verdict = isPromiseLike(deciding) ? await deciding : deciding
        if (!verdict.allowed) return deny(req, res, verdict)
        if (verdict.headers !== undefined) res.set(verdict.headers)
        if (verdict.reservation !== undefined) settleAfterResponse(args, route, verdict.reservation)
        next()
      })
    },

    requireFeature(lever: string, options: FeatureOptions = {}): PlanshipHandler {
      validateFeature(lever, options)
      return guarded(async (req, res, next) => {
        const identifying = identify(req, res)
        const state = isPromiseLike(identifying) ? await identifying : identifying
        const deciding = gate.feature(state, lever, options)
        const verdict = isPromiseLike(deciding) ? await deciding : deciding
        if (!verdict.allowed) return deny(req, res, verdict)
        next()
      })
    },
  }
}
