import type { Context, Middleware, Next } from 'koa'
import { isPromiseLike, type MaybePromise } from '../enforcement/store.js'
import { denialBody } from '../http/denial.js'
import type { Gate, Verdict } from '../http/gate.js'
import { identifyCustomer } from '../http/identify.js'
import { type FeatureOptions, type RouteConsumeOptions, validateConsume, validateFeature } from '../http/route.js'
import type { PlanshipRequestState } from '../http/state.js'
import type { Log } from '../log.js'
import type { MeterOptions } from '../options.js'
import type { PlanshipState } from './state.js'

/** Per-route options of `consume()` on Koa: the callbacks get `ctx`. */
export type ConsumeOptions = RouteConsumeOptions<[ctx: Context]>
export type { FeatureOptions }

export interface KoaAdapterConfig {
  identify: MeterOptions['identify']
  onDenied: MeterOptions['onDenied']
  gate: Gate
  log: Log
}

type Ctx = Context & { state: Partial<PlanshipState> }
type Denied = Extract<Verdict, { allowed: false }>

const succeeded = ([ctx]: [Context]) => ctx.status < 400

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
      // Awaits only what is really asynchronous: on a warm cache the decision is synchronous.
      return async function planshipConsume(ctx: Ctx, next: Next) {
        const identifying = identify(ctx)
        const state = isPromiseLike(identifying) ? await identifying : identifying
        const args: [Context] = [ctx]
        const deciding = gate.route(state, route, args)
        const verdict = isPromiseLike(deciding) ? await deciding : deciding
        if (!verdict.allowed) return deny(ctx, verdict)
        if (verdict.headers !== undefined) ctx.set(verdict.headers)
        const reservation = verdict.reservation
        if (reservation === undefined) return next()
        try {
          await next()
        } catch (error) {
          await gate.settle(reservation, undefined)
          throw error
        }
        const reported = route.shouldReport(args)
        const settling = gate.settle(reservation, reported ? route.usage(args, reservation.cost) : undefined)
        if (isPromiseLike(settling)) await settling
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
