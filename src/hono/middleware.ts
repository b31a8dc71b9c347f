import type { ServerResponse } from 'node:http'
import type { Context, MiddlewareHandler, Next } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { isPromiseLike, type MaybePromise } from '../enforcement/store.js'
import { denialBody } from '../http/denial.js'
import type { Gate, Verdict } from '../http/gate.js'
import { wrongFramework } from '../http/framework.js'
import { identifyRequest } from '../http/identify.js'
import { ReservationHold } from '../http/reservation.js'
import { clientGone, type ResponseEnd, settleAt, settleWhenOver } from '../http/response-end.js'
import {
  type FeatureOptions,
  type ResolvedConsume,
  type RouteConsumeOptions,
  validateConsume,
  validateFeature,
} from '../http/route.js'
import type { PlanshipRequestState } from '../http/state.js'
import { STATUS_HEADERS, statusAnswer } from '../http/status-route.js'
import type { CustomerStatus } from '../enforcement/status.js'
import { watchBody } from '../http/web-body.js'
import type { Log } from '../log.js'
import type { Denial, Identify } from '../options.js'
import type { PlanshipVariables } from './state.js'

/** What Hono hands every callback: the request's context. */
export type HonoArgs = [c: Context]

/** Per-route options of `consume()` on Hono: the callbacks get `c`. */
export type ConsumeOptions = RouteConsumeOptions<HonoArgs>
export type { FeatureOptions }

/** A middleware that leaves `c.get('planship')` set, so handlers after it in a chain see it typed. */
export type PlanshipMiddleware = MiddlewareHandler<{ Variables: PlanshipVariables }>

/**
 * Answers a denied request on Hono: returns the Response to send. The denial's status and
 * headers are already set on `c`, so `c.json(…)` or `c.text(…)` keep them.
 */
export type HonoOnDenied = (c: Context, denial: Denial) => Response | Promise<Response>

export interface HonoAdapterConfig {
  identify: Identify<HonoArgs>
  onDenied: HonoOnDenied | undefined
  gate: Gate
  log: Log
  status: (customerId: string) => Promise<CustomerStatus>
}

/** `statusRoute()`: a route's handler, `app.get('/v1/usage', planship.statusRoute())`. */
export type PlanshipStatusHandler = (c: Context) => Promise<Response>

type Denied = Extract<Verdict, { allowed: false }>

const succeeded = ([c]: HonoArgs) => c.res.status < 400
const keep = ([c]: HonoArgs, state: PlanshipRequestState) => c.set('planship', state)

/** A handler that threw: nothing of the work was delivered, so it is not billed. */
const FAILED: ResponseEnd = { complete: false, started: false, handlerDone: true, failed: true }
/** The client left while the handler ran, before any of the response was written. */
const LEFT_EARLY: ResponseEnd = { complete: false, started: false, handlerDone: false }
/** A response without a body is over once the handler returned it. */
const NO_BODY: ResponseEnd = { complete: true, started: true, handlerDone: true }

/**
 * The Node response @hono/node-server passes as `c.env.outgoing`, when there is one: told by
 * its shape, so that this entry loads nothing of Node's http module and runs on other runtimes.
 */
function nodeResponse(c: Context): ServerResponse | undefined {
  const outgoing = (c.env as { outgoing?: Partial<ServerResponse> } | undefined)?.outgoing
  return typeof outgoing?.on === 'function' && typeof outgoing.writableFinished === 'boolean'
    ? (outgoing as ServerResponse)
    : undefined
}

/**
 * Headers set with `c.header()` before `next()` are lost when the handler returns a Response of
 * its own (honojs/hono#2681): set them again. `c.header()` copies a response whose headers are
 * immutable; a response built with `c.json()` and the like has them already and is left as is.
 */
function keepHeaders(c: Context, headers: Record<string, string>): void {
  const kept = c.res.headers
  for (const name in headers) if (!kept.has(name)) c.header(name, headers[name])
}

/** A middleware's next step, with what the step before it found. */
type Step<T> = (c: Context, next: Next, value: T) => Promise<Response | void>

/** Runs `step` with `value`, at once when it is no promise: the warm path adds no promise or closure of its own. */
function proceed<T>(c: Context, next: Next, value: MaybePromise<T>, step: Step<T>): Promise<Response | void> {
  return isPromiseLike(value) ? Promise.resolve(value).then((settled) => step(c, next, settled)) : step(c, next, value)
}

/** The thin Hono layer over the shared gate: identify, consume, requireFeature. */
export function createHonoAdapter(config: HonoAdapterConfig) {
  const { gate, log, onDenied } = config

  /**
   * The denial's status and headers are set on `c` first, so that a custom `onDenied` answering
   * with `c.json()`/`c.text()` keeps them. One that returns no Response gets the contract's body.
   */
  function deny(c: Context, { denial }: Denied): Promise<Response> {
    const status = denial.status as ContentfulStatusCode
    if (onDenied === undefined) return Promise.resolve(c.json(denialBody(denial), status, denial.headers))
    c.status(status)
    for (const name in denial.headers) c.header(name, denial.headers[name])
    return Promise.resolve(onDenied(c, denial)).then((answer: unknown) =>
      answer instanceof Response ? answer : c.json(denialBody(denial), status),
    )
  }

  /** The request's identification, done once per request; synchronous when `identify` is. */
  function identify(c: Context): MaybePromise<PlanshipRequestState> {
    // Koa's context and Express's request have no `json()`: name the import to use there.
    if (typeof (c as Partial<Context>).json !== 'function') throw wrongFramework('hono', c)
    const known = c.get('planship') as PlanshipRequestState | undefined
    return known ?? identifyRequest(config.identify, [c], log, keep)
  }

  /**
   * Settles `hold` once the response is over. On @hono/node-server, Hono writes the response to
   * the Node one after the middleware chain resolved: it is watched there ('finish', 'close'),
   * as on Express. Elsewhere the body stream is watched (its end read, or cancelled when the
   * client went away); a response without a body, or to HEAD, is over at once. A handler that
   * threw (`c.error`; `next()` never rejects in Hono) before any of the response was written is
   * not billed.
   */
  function settleAfter<A extends HonoArgs>(
    c: Context,
    route: ResolvedConsume<A>,
    args: A,
    hold: ReservationHold,
    res: ServerResponse | undefined,
    listening: boolean,
  ): void {
    if (res !== undefined) {
      if (c.error !== undefined && !res.headersSent) settleAt(gate, log, route, args, hold, FAILED)
      else if (listening)
        return // under onAbort: 'bill', watched since admission
      else if (clientGone(res)) settleAt(gate, log, route, args, hold, LEFT_EARLY)
      else settleWhenOver(gate, log, route, args, res, hold, true)
      return
    }
    if (c.error !== undefined) return settleAt(gate, log, route, args, hold, FAILED)
    if (c.req.raw.signal.aborted) return settleAt(gate, log, route, args, hold, LEFT_EARLY)
    const body = c.res.body
    // Hono answers HEAD with the GET route's status and headers and drops its body
    // (`new Response(null, res)`): a watched body would never be read or cancelled, its units
    // held for good.
    if (body === null || c.req.method === 'HEAD') return settleAt(gate, log, route, args, hold, NO_BODY)
    c.res = new Response(
      watchBody(body, ({ complete, started }) =>
        settleAt(gate, log, route, args, hold, { complete, started, handlerDone: true }),
      ),
      c.res,
    )
  }

  return {
    middleware(): PlanshipMiddleware {
      // Not async: with a synchronous identify, this layer adds no promise of its own.
      return function planshipIdentify(c, next) {
        const state = identify(c)
        return isPromiseLike(state) ? Promise.resolve(state).then(() => next()) : next()
      }
    },

    consume(meteringId: string, options: ConsumeOptions = {}): PlanshipMiddleware {
      const route = validateConsume(meteringId, options, log, succeeded)

      function admit(c: Context, next: Next, state: PlanshipRequestState, verdict: Verdict): Promise<Response | void> {
        if (!verdict.allowed) return deny(c, verdict)
        const { headers, reservation } = verdict
        const res = nodeResponse(c)
        // On @hono/node-server the headers go on the Node response: its writeHead() merges them
        // into whatever Response the handler returns, a raw one included, and no fetch Headers
        // are built for them. Elsewhere they are set on `c`, and again if a raw Response lost them.
        const onContext = res === undefined ? headers : undefined
        if (headers !== undefined) {
          if (res !== undefined) for (const name in headers) res.setHeader(name, headers[name]!)
          else for (const name in headers) c.header(name, headers[name])
        }
        const hold = new ReservationHold(gate, reservation, route, state.decisions, res)
        state.reservations[meteringId] = hold
        if (reservation === undefined)
          return onContext === undefined ? next() : next().then(() => keepHeaders(c, onContext))
        const args: HonoArgs = [c]
        // Under onAbort: 'bill', a client gone mid-handler is billed the usage read when it left.
        const listening = res !== undefined && gate.onAbort(route) === 'bill'
        if (listening) settleWhenOver(gate, log, route, args, res, hold, false)
        return next().then(() => {
          if (onContext !== undefined && c.error === undefined) keepHeaders(c, onContext)
          settleAfter(c, route, args, hold, res, listening)
        })
      }

      const decide: Step<PlanshipRequestState> = (c, next, state) => {
        const deciding = gate.route(state, route, [c])
        return isPromiseLike(deciding)
          ? Promise.resolve(deciding).then((verdict) => admit(c, next, state, verdict))
          : admit(c, next, state, deciding)
      }

      // Not async: on a warm cache the decision is synchronous, and this layer adds no promise
      // (and no closure) of its own before the handler runs.
      return function planshipConsume(c, next) {
        return proceed(c, next, identify(c), decide)
      }
    },

    requireFeature(lever: string, options: FeatureOptions = {}): PlanshipMiddleware {
      validateFeature(lever, options)
      const pass: Step<Verdict> = (c, next, verdict) => (verdict.allowed ? next() : deny(c, verdict))
      const decide: Step<PlanshipRequestState> = (c, next, state) =>
        proceed(c, next, gate.feature(state, lever, options), pass)
      return function planshipRequireFeature(c, next) {
        return proceed(c, next, identify(c), decide)
      }
    },

    /** A route handler answering the identified customer's status (401, 503 as the others deny). */
    statusRoute(): PlanshipStatusHandler {
      return async function planshipStatus(c) {
        const answer = await statusAnswer(await identify(c), config.status)
        if (!answer.allowed) return deny(c, answer)
        return c.json(answer.body, 200, STATUS_HEADERS)
      }
    },
  }
}
