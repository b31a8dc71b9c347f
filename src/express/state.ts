import type { PlanshipRequestState } from '../http/state.js'

/** What planship-meter adds to `res.locals`: the handlers of a meter are typed with it. */
export interface PlanshipLocals {
  planship: PlanshipRequestState
}

declare global {
  // Express's own extension point for `res.locals`: typed (and optional) in every handler once
  // planship-meter/express is imported; defined in a chain after consume/requireFeature.
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Locals {
      planship?: PlanshipRequestState
    }
  }
}
