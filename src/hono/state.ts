import type { PlanshipRequestState } from '../http/state.js'

/**
 * What planship-meter adds to a Hono context's variables. Each middleware of a meter is typed
 * `{ Variables: PlanshipVariables }`, so a handler after it in a chain sees `c.get('planship')`
 * and `c.var.planship` typed; elsewhere declare it on the app: `new Hono<{ Variables: PlanshipVariables }>()`.
 */
export interface PlanshipVariables {
  planship: PlanshipRequestState
}
