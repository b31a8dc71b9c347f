import { STATUS_CODES } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Context, Middleware } from 'koa'
import { ApiError } from './api-error.js'
import type { RouteName } from './counters.js'
import type { FaultKind, FaultStatus, ParsedFaultConfig, ResolvedFaultRule } from './fault-config.js'

/** Global settings, changeable while the emulator runs. */
export interface FaultSettings {
  /** Delay before every API answer, in ms. */
  latencyMs: number
}

/** The fault state as the admin route shows it. */
export interface FaultSnapshot {
  seed: number
  rules: ResolvedFaultRule[]
  down: boolean
}

/** mulberry32: a tiny, fast, well-spread 32-bit PRNG, so a seed replays the same faults. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Misbehaviour injected in front of API route handlers (never admin routes). Each API route gets
 * `middleware(route)` right after its counter, so a faulted request is still counted.
 *
 * Decisions are taken synchronously when the request reaches its route, before anything awaits,
 * so they follow request arrival order: the same requests in the same order meet the same faults.
 */
export class Faults {
  readonly settings: FaultSettings
  private seed: number
  private random: () => number
  private rules: readonly ResolvedFaultRule[] = []
  private down = false
  private counts = new Map<string, number>()

  constructor(private readonly initial: FaultSettings & { seed: number }) {
    this.settings = { latencyMs: initial.latencyMs }
    this.seed = initial.seed
    this.random = mulberry32(this.seed)
  }

  /** Applies the fields that are present; `seed` restarts the PRNG, `rules` replaces the list. */
  configure(config: ParsedFaultConfig): void {
    if (config.seed !== undefined) {
      this.seed = config.seed
      this.random = mulberry32(config.seed)
    }
    if (config.rules !== undefined) this.rules = config.rules.map((rule) => ({ ...rule }))
    if (config.down !== undefined) this.down = config.down
  }

  setDown(down: boolean): void {
    this.down = down
  }

  /** No rules, not down, counts at zero, and the PRNG restarted from the current seed. */
  clear(): void {
    this.rules = []
    this.down = false
    this.counts = new Map()
    this.random = mulberry32(this.seed)
  }

  /** Back to the latency and seed the emulator started with, without faults. */
  reset(): void {
    this.settings.latencyMs = this.initial.latencyMs
    this.seed = this.initial.seed
    this.clear()
  }

  snapshot(): FaultSnapshot {
    return { seed: this.seed, rules: this.rules.map((rule) => ({ ...rule })), down: this.down }
  }

  /** How many times each kind fired (`down` counts connections refused while down). */
  firedCounts(): Record<string, number> {
    return Object.fromEntries(this.counts)
  }

  middleware(route: RouteName): Middleware {
    return async (ctx, next) => {
      if (this.down) {
        this.count('down')
        resetConnection(ctx)
        return
      }
      const { latencyMs, fault } = this.decide(route)
      const delay = this.settings.latencyMs + latencyMs
      // Unreferenced so that a pending delay never keeps a closing process alive.
      if (delay > 0) await sleep(delay, undefined, { ref: false })
      switch (fault?.kind) {
        case undefined:
          return next()
        case 'error':
          throw injectedError(fault.status ?? 503)
        case 'rate-limit':
          throw new ApiError(429, 'Too Many Requests (injected fault)', {
            'Retry-After': String(fault.retryAfterS ?? 1),
          })
        case 'hang':
          return hang(ctx)
        case 'reset':
          return resetConnection(ctx)
        case 'apply-then-fail':
          // A failure of the route itself propagates: nothing was applied, so there is nothing to hide.
          await next()
          this.count('apply-then-fail')
          if (fault.mode === 'reset') return resetConnection(ctx)
          if (fault.mode === 'hang') return hang(ctx)
          throw injectedError(fault.status ?? 503)
      }
    }
  }

  /**
   * One PRNG draw per rule matching the route, in rule order, whatever the outcome: `latency`
   * rules that fire add up, the first other rule that fires is the request's fault.
   */
  private decide(route: RouteName): { latencyMs: number; fault: ResolvedFaultRule | undefined } {
    let latencyMs = 0
    let fault: ResolvedFaultRule | undefined
    for (const rule of this.rules) {
      if (rule.route !== '*' && rule.route !== route) continue
      if (!(this.random() < rule.rate)) continue
      if (rule.kind === 'latency') {
        latencyMs += rule.latencyMs ?? 0
        this.count('latency')
      } else {
        fault ??= rule
      }
    }
    // apply-then-fail counts once the route has applied the request.
    if (fault !== undefined && fault.kind !== 'apply-then-fail') this.count(fault.kind)
    return { latencyMs, fault }
  }

  private count(kind: FaultKind | 'down'): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1)
  }
}

function injectedError(status: FaultStatus): ApiError {
  return new ApiError(status, `${STATUS_CODES[status] ?? 'Error'} (injected fault)`)
}

/** Drops the connection with a TCP RST and no answer, as a crashed upstream or a proxy would. */
function resetConnection(ctx: Context): void {
  ctx.respond = false
  const socket = ctx.req.socket
  if (socket.destroyed) return
  try {
    socket.resetAndDestroy()
  } catch {
    // Not a TCP socket: a plain close is the nearest thing.
    socket.destroy()
  }
}

/**
 * Never answers: resolves when the connection closes, because the client gave up or the emulator
 * closed (which destroys every connection), so a hang holds no timer and no socket of its own.
 */
function hang(ctx: Context): Promise<void> {
  ctx.respond = false
  const res = ctx.res
  if (res.destroyed || ctx.req.socket.destroyed) return Promise.resolve()
  return new Promise((resolve) => res.once('close', () => resolve()))
}
