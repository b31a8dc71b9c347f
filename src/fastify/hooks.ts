import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { isPromiseLike, type MaybePromise } from '../enforcement/store.js'
import { denialBody } from '../http/denial.js'
import { wrongFramework } from '../http/framework.js'
import type { Verdict } from '../http/gate.js'
import { identifyCustomer } from '../http/identify.js'
import { ReservationHold } from '../http/reservation.js'
import { settleWhenOver } from '../http/response-end.js'
import { type FeatureOptions, type RouteConsumeOptions, validateConsume, validateFeature } from '../http/route.js'
import { type PlanshipRequestState, requestState } from '../http/state.js'
import type { HttpAdapterConfig } from '../meter.js'

/** What Fastify hands every callback. */
export type FastifyArgs = [request: FastifyRequest, reply: FastifyReply]

/** Per-route options of `consume()` on Fastify: the callbacks get `(request, reply)`. */
export type ConsumeOptions = RouteConsumeOptions<FastifyArgs>
export type { FeatureOptions }

/**
 * A `preHandler` hook of a meter, in callback style: it calls `done()` (or answers the denial)
 * without a promise of its own whenever the decision is synchronous, as on a warm cache.
 */
export type PlanshipHook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void

type Denied = Extract<Verdict, { allowed: false }>

const succeeded = ([, reply]: FastifyArgs) => reply.statusCode < 400

/**
 * On Node's response itself rather than `reply.header()`: a hijacked reply (an SSE writer on
 * `reply.raw`) never sends the headers kept by `reply`, while Node merges these into any
 * `writeHead`. `reply.getHeaders()` still lists them.
 */
function setHeaders(reply: FastifyReply, headers: Record<string, string>): void {
  const raw = reply.raw
  if (raw.headersSent) return
  for (const name in headers) raw.setHeader(name, headers[name]!)
}

/**
 * Runs `then` on a value that may be a promise, at once when it is not. Once asynchronous, a
 * rejection or a throw of `then` goes to `done(error)`; synchronously, a throw is left to
 * Fastify's hook runner, which answers it the same way.
 */
function after<T>(value: MaybePromise<T>, then: (value: T) => void, done: HookHandlerDoneFunction): void {
  if (!isPromiseLike(value)) return then(value)
  Promise.resolve(value).then(then).catch(done)
}

/**
 * The thin Fastify layer over the shared gate: the identifying hook of the plugin, consume and
 * requireFeature as `preHandler` hooks. A hook throwing synchronously is Fastify's to answer
 * (its hook runner sends the error); an asynchronous failure is handed to `done(error)`.
 */
export function createFastifyAdapter(config: HttpAdapterConfig<FastifyArgs>) {
  const { gate, log } = config

  /**
   * Status and headers first, so that a custom `onDenied` writing only a body keeps them; then
   * the contract's body through `reply`, never thrown, so an app's `setErrorHandler` cannot
   * rewrite it. `done` is not called: the handler must not run.
   */
  function deny(request: FastifyRequest, reply: FastifyReply, { denial }: Denied, done: HookHandlerDoneFunction): void {
    reply.code(denial.status).headers(denial.headers)
    const answered = () => {
      // A custom answer that wrote nothing still answers, with the contract's body.
      if (!reply.sent && !reply.raw.headersSent) void reply.send(denialBody(denial))
    }
    if (config.onDenied === undefined) return answered()
    after(config.onDenied(request, reply, denial), answered, done)
  }

  /** The request's identification, done once per request; synchronous when `identify` is. */
  function identify(request: FastifyRequest, reply: FastifyReply): MaybePromise<PlanshipRequestState> {
    // Fastify's request wraps Node's as `raw`: without it, this hook was mounted elsewhere.
    if (request.raw === undefined) throw wrongFramework('fastify', request)
    const known = request.planship
    if (known !== null && known !== undefined) return known
    const identifying = identifyCustomer(config.identify, [request, reply], log)
    const identified = (customerId: string | undefined) => (request.planship = requestState(customerId))
    return isPromiseLike(identifying) ? Promise.resolve(identifying).then(identified) : identified(identifying)
  }

  return {
    /** The plugin's app-wide hook: identifies every request into `request.planship`. Never denies. */
    middleware(): PlanshipHook {
      return function planshipIdentify(request, reply, done) {
        after(identify(request, reply), () => done(), done)
      }
    },

    consume(meteringId: string, options: ConsumeOptions = {}): PlanshipHook {
      const route = validateConsume(meteringId, options, log, succeeded)
      // Not async (Fastify rejects an async hook of three parameters, and a promise per request
      // is what the warm path must not pay): the decision is synchronous on a warm cache.
      return function planshipConsume(request, reply, done) {
        const args: FastifyArgs = [request, reply]
        after(
          identify(request, reply),
          (state) =>
            after(
              gate.route(state, route, args),
              (verdict) => {
                if (!verdict.allowed) return deny(request, reply, verdict, done)
                if (verdict.headers !== undefined) setHeaders(reply, verdict.headers)
                const hold = new ReservationHold(gate, verdict.reservation, route, state.decisions, reply.raw)
                state.reservations[meteringId] = hold
                // The usage is read once Node's response is over ('finish', or 'close' for a
                // client gone first: Fastify's onResponse never sees that), whether `reply.send`
                // ended it, a streamed body did, or a hijacked handler wrote it itself.
                if (verdict.reservation !== undefined) settleWhenOver(gate, log, route, args, reply.raw, hold, false)
                done()
              },
              done,
            ),
          done,
        )
      }
    },

    requireFeature(lever: string, options: FeatureOptions = {}): PlanshipHook {
      validateFeature(lever, options)
      return function planshipRequireFeature(request, reply, done) {
        after(
          identify(request, reply),
          (state) =>
            after(
              gate.feature(state, lever, options),
              (verdict) => (verdict.allowed ? done() : deny(request, reply, verdict, done)),
              done,
            ),
          done,
        )
      }
    },
  }
}
