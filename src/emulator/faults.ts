import { setTimeout as sleep } from 'node:timers/promises'
import type { Middleware } from 'koa'
import type { RouteName } from './counters.js'

/** Fault-injection settings, changeable while the emulator runs. */
export interface FaultSettings {
  /** Delay before every API answer, in ms. */
  latencyMs: number
}

/**
 * Misbehaviour injected in front of API route handlers (never admin routes). Each API route gets
 * `middleware(route)` right after its counter, so a rule can target one route or all of them;
 * further faults (error rates, hangs, connection resets) belong here as more settings.
 */
export class Faults {
  readonly settings: FaultSettings

  constructor(private readonly initial: FaultSettings) {
    this.settings = { ...initial }
  }

  /** Back to the settings the emulator started with. */
  reset(): void {
    Object.assign(this.settings, this.initial)
  }

  middleware(_route: RouteName): Middleware {
    return async (_ctx, next) => {
      const latencyMs = this.settings.latencyMs
      // Unreferenced so that a pending delay never keeps a closing process alive.
      if (latencyMs > 0) await sleep(latencyMs, undefined, { ref: false })
      await next()
    }
  }
}
