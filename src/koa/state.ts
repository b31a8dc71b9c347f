import type { PlanshipRequestState } from '../http/state.js'

/**
 * What planship-meter adds to `ctx.state`. The middleware of a meter is typed with it, so after
 * `app.use(meter.middleware())` (or `consume`/`requireFeature` in a router chain) handlers see
 * `ctx.state.planship` defined. Or declare it yourself: `new Koa<PlanshipState>()`.
 */
export interface PlanshipState {
  planship: PlanshipRequestState
}
