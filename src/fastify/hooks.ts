import type {
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerBase,
  RawServerDefault,
  RouteGenericInterface,
} from 'fastify'
import { isPromiseLike, type MaybePromise } from '../enforcement/store.js'
import { denialBody } from '../http/denial.js'
import { wrongFramework } from '../http/framework.js'
import type { Verdict } from '../http/gate.js'
import { identifyRequest } from '../http/identify.js'
import { ReservationHold } from '../http/reservation.js'
import { settleWhenOver } from '../http/response-end.js'
import { type FeatureOptions, type RouteConsumeOptions, validateConsume, validateFeature } from '../http/route.js'
import type { PlanshipRequestState } from '../http/state.js'
import { STATUS_HEADERS, statusAnswer } from '../http/status-route.js'
import type { HttpAdapterConfig } from '../meter.js'

/** What Fastify hands every callback. */
export type FastifyArgs = [request: FastifyRequest, reply: FastifyReply]

/** Per-route options of `consume()` on Fastify: the callbacks get `(request, reply)`. */
export type ConsumeOptions = RouteConsumeOptions<FastifyArgs>
export type { FeatureOptions }

/**
 * A function of Fastify's request and reply (then `Rest`), generic in the raw server as Fastify's
 * own hooks and handlers are, so that it fits the routes of an HTTP/2 app too.
 */
export interface OnAnyServer<Rest extends unknown[], Result> {
  <
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
  >(
    request: FastifyRequest<RouteGenericInterface, RawServer, RawRequest>,
    reply: FastifyReply<RouteGenericInterface, RawServer, RawRequest, RawReply>,
    ...rest: Rest
  ): Result
}

/**
 * A `preHandler` hook of a meter, in callback style: it calls `done()` (or answers the denial)
 * without a promise of its own whenever the decision is synchronous, as on a warm cache.
 */
export type PlanshipHook = OnAnyServer<[done: HookHandlerDoneFunction], void>

/** `statusRoute()`: a route's handler, `app.get('/v1/usage', planship.statusRoute())`. */
export type PlanshipStatusHandler = OnAnyServer<[], Promise<FastifyReply>>

/**
 * The hooks are written against Fastify's default types: they read only what every raw server's
 * request and reply have (`raw`, headers, Node's response events), HTTP/2 ones included.
 */
const anyServerHook = (hook: (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void) =>
  hook as PlanshipHook
const anyServerHandler = (handler: (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>) =>
  handler as PlanshipStatusHandler

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

/** A hook's next step, with what the step before it found. */
type Step<T> = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction, value: T) => void

/**
 * Runs `step` with `value`, at once when it is no promise (no closure of ours on the warm path).
 * Once asynchronous, a rejection or a throw of `step` goes to `done(error)`; synchronously, a
 * throw is left to Fastify's hook runner, which answers it the same way.
 */
function proceed<T>(
  request: FastifyRequest,
  reply: FastifyReply,
  done: HookHandlerDoneFunction,
  value: MaybePromise<T>,
  step: Step<T>,
): void {
  if (!isPromiseLike(value)) return step(request, reply, done, value)
  Promise.resolve(value)
    .then((settled) => step(request, reply, done, settled))
    .catch(done)
}

/** The request's state, kept on the request for the hooks after this one and the handler. */
function keep([request]: FastifyArgs, state: PlanshipRequestState): void {
  request.planship = state
}

/**
 * The thin Fastify layer over the shared gate: the identifying hook of the plugin, consume and
 * requireFeature as `preHandler` hooks. A hook throwing synchronously is Fastify's to answer
 * (its hook runner sends the error); an asynchronous failure is handed to `done(error)`.
 *
 * Each step is a function of its own, called directly when the value before it is no promise:
 * on a warm cache with a synchronous `identify`, a metered request allocates no promise and no
 * closure of ours before the handler runs.
 */
export function createFastifyAdapter(config: HttpAdapterConfig<FastifyArgs>) {
  const { gate, log } = config

  /**
   * Status and headers first, so that a custom `onDenied` writing only a body keeps them; then
   * the contract's body through `reply`, never thrown, so an app's `setErrorHandler` cannot
   * rewrite it. `done` is not called: the handler must not run.
   */
  function answerDenial(request: FastifyRequest, reply: FastifyReply, { denial }: Denied): MaybePromise<void> {
    reply.code(denial.status).headers(denial.headers)
    const answered = () => {
      // A custom answer that wrote nothing still answers, with the contract's body.
      if (!reply.sent && !reply.raw.headersSent) void reply.send(denialBody(denial))
    }
    if (config.onDenied === undefined) return answered()
    const answering = config.onDenied(request, reply, denial)
    return isPromiseLike(answering) ? Promise.resolve(answering).then(answered) : answered()
  }

  /** A hook's denial: `done` only for a custom answer that failed. */
  function deny(request: FastifyRequest, reply: FastifyReply, denied: Denied, done: HookHandlerDoneFunction): void {
    const answering = answerDenial(request, reply, denied)
    if (isPromiseLike(answering)) Promise.resolve(answering).catch(done)
  }

  /** The request's identification, done once per request; synchronous when `identify` is. */
  function identify(request: FastifyRequest, reply: FastifyReply): MaybePromise<PlanshipRequestState> {
    // Fastify's request wraps Node's as `raw`: without it, this hook was mounted elsewhere.
    if (request.raw === undefined) throw wrongFramework('fastify', request)
    const known = request.planship
    if (known !== null && known !== undefined) return known
    return identifyRequest(config.identify, [request, reply], log, keep)
  }

  /** Runs `step` with the request's state, now when it is known, else once identified. */
  function withState(
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
    step: Step<PlanshipRequestState>,
  ): void {
    proceed(request, reply, done, identify(request, reply), step)
  }

  return {
    /** The plugin's app-wide hook: identifies every request into `request.planship`. Never denies. */
    middleware(): PlanshipHook {
      return anyServerHook(function planshipIdentify(request, reply, done) {
        const identifying = identify(request, reply)
        if (!isPromiseLike(identifying)) return done()
        Promise.resolve(identifying)
          .then(() => done())
          .catch(done)
      })
    },

    consume(meteringId: string, options: ConsumeOptions = {}): PlanshipHook {
      const route = validateConsume(meteringId, options, log, succeeded)

      function admit(
        request: FastifyRequest,
        reply: FastifyReply,
        done: HookHandlerDoneFunction,
        args: FastifyArgs,
        state: PlanshipRequestState,
        verdict: Verdict,
      ): void {
        if (!verdict.allowed) return deny(request, reply, verdict, done)
        if (verdict.headers !== undefined) setHeaders(reply, verdict.headers)
        const hold = new ReservationHold(gate, verdict.reservation, route, state.decisions, reply.raw)
        state.reservations[meteringId] = hold
        // The usage is read once Node's response is over ('finish', or 'close' for a client gone
        // first: Fastify's onResponse never sees that), whether `reply.send` ended it, a
        // streamed body did, or a hijacked handler wrote it itself.
        if (verdict.reservation !== undefined) settleWhenOver(gate, log, route, args, reply.raw, hold, false)
        done()
      }

      const decide: Step<PlanshipRequestState> = (request, reply, done, state) => {
        const args: FastifyArgs = [request, reply]
        const deciding = gate.route(state, route, args)
        if (!isPromiseLike(deciding)) return admit(request, reply, done, args, state, deciding)
        Promise.resolve(deciding)
          .then((verdict) => admit(request, reply, done, args, state, verdict))
          .catch(done)
      }

      // Not async: Fastify rejects an async hook of three parameters, and a promise per request
      // is what the warm path must not pay.
      return anyServerHook(function planshipConsume(request, reply, done) {
        withState(request, reply, done, decide)
      })
    },

    requireFeature(lever: string, options: FeatureOptions = {}): PlanshipHook {
      validateFeature(lever, options)
      const pass: Step<Verdict> = (request, reply, done, verdict) =>
        verdict.allowed ? done() : deny(request, reply, verdict, done)
      const decide: Step<PlanshipRequestState> = (request, reply, done, state) =>
        proceed(request, reply, done, gate.feature(state, lever, options), pass)
      return anyServerHook(function planshipRequireFeature(request, reply, done) {
        withState(request, reply, done, decide)
      })
    },

    /** A route handler answering the identified customer's status (401, 503 as the hooks deny). */
    statusRoute(): PlanshipStatusHandler {
      return anyServerHandler(async function planshipStatus(request, reply) {
        const answer = await statusAnswer(await identify(request, reply), config.status)
        if (!answer.allowed) await answerDenial(request, reply, answer)
        else reply.code(200).headers(STATUS_HEADERS).send(answer.body)
        return reply
      })
    },
  }
}
