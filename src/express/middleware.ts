import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { ParamsDictionary, Query } from 'express-serve-static-core'
import { isPromiseLike, type MaybePromise } from '../enforcement/store.js'
import { denialBody } from '../http/denial.js'
import type { Gate, Verdict } from '../http/gate.js'
import { wrongFramework } from '../http/framework.js'
import { identifyCustomer } from '../http/identify.js'
import { ReservationHold } from '../http/reservation.js'
import { settleWhenOver } from '../http/response-end.js'
import { type FeatureOptions, type RouteConsumeOptions, validateConsume, validateFeature } from '../http/route.js'
import { type PlanshipRequestState, requestState } from '../http/state.js'
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
    const identified = (customerId: string | undefined) => (res.locals.planship = requestState(customerId))
    return isPromiseLike(identifying) ? Promise.resolve(identifying).then(identified) : identified(identifying)
  }

  /** Runs an async step of a middleware; whatever it throws goes to Express's error handling. */
  const guarded =
    (step: (req: Request, res: Response, next: NextFunction) => Promise<void>): PlanshipHandler =>
    (req, res, next) => {
      if (res.locals === undefined) throw wrongFramework('express', req) // mounted on Koa: name the right import
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
        const hold = new ReservationHold(gate, verdict.reservation, route, state.decisions, res)
        state.reservations[meteringId] = hold
        // Express handlers return no promise of their work: the response's end is all there is.
        if (verdict.reservation !== undefined) settleWhenOver(gate, log, route, args, res, hold, false)
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
