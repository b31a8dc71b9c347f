import type { Context, Middleware, Next } from 'koa'
import { isPromiseLike, type MaybePromise, type Reservation } from '../enforcement/store.js'
import { denialBody } from '../http/denial.js'
import type { Gate, Verdict } from '../http/gate.js'
import { identifyCustomer } from '../http/identify.js'
import { type FeatureOptions, type RouteConsumeOptions, validateConsume, validateFeature } from '../http/route.js'
import type { PlanshipRequestState } from '../http/state.js'
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
}

type Ctx = Context & { state: Partial<PlanshipState> }
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
    if (ctx.state.planship !== undefined) return ctx.state.planship
    const identifying = identifyCustomer(config.identify, [ctx], log)
    return isPromiseLike(identifying)
      ? Promise.resolve(identifying).then((customerId) => identified(ctx, customerId))
      : identified(ctx, identifying)
  }

  function identified(ctx: Ctx, customerId: string | undefined): PlanshipRequestState {
    const state: PlanshipRequestState = { customerId, decisions: [] }
    ctx.state.planship = state
    return state
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

      /** After the handler: the usage is reported, or the reservation returned when it threw. */
      function settle(args: [Context], reservation: Reservation, next: Next): Promise<void> {
        return next().then(
          () => {
            const usage = route.shouldReport(args) ? route.usage(args, reservation.cost) : undefined
            return gate.settle(reservation, usage)
          },
          (error: unknown) => Promise.resolve(gate.settle(reservation, undefined)).then(() => Promise.reject(error)),
        )
      }

      function admit(ctx: Ctx, next: Next, args: [Context], verdict: Verdict): Promise<void> {
        if (!verdict.allowed) return deny(ctx, verdict)
        if (verdict.headers !== undefined) setHeaders(ctx, verdict.headers)
        const reservation = verdict.reservation
        return reservation === undefined ? next() : settle(args, reservation, next)
      }

      function decide(ctx: Ctx, next: Next, state: PlanshipRequestState): Promise<void> {
        const args: [Context] = [ctx]
        const deciding = gate.route(state, route, args)
        return isPromiseLike(deciding)
          ? Promise.resolve(deciding).then((verdict) => admit(ctx, next, args, verdict))
          : admit(ctx, next, args, deciding)
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
  }
}
