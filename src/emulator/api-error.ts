/** One FastAPI/pydantic validation problem, as in Planship's `HTTPValidationError.detail`. */
export interface ValidationIssue {
  loc: Array<string | number>
  msg: string
  type: string
}

/**
 * An error answer of the emulated API: `{"detail": …}` with `status`, FastAPI's convention that
 * Planship follows. Thrown by the state and the routes, turned into a response in one place.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string | ValidationIssue[],
    readonly headers: Record<string, string> = {},
  ) {
    super(typeof detail === 'string' ? detail : detail.map((d) => `${d.loc.join('.')}: ${d.msg}`).join('; '))
    this.name = 'ApiError'
  }
}

export function notFound(what: string): ApiError {
  return new ApiError(404, `${what} not found`)
}

export function invalid(loc: Array<string | number>, msg: string, type: string): ApiError {
  return new ApiError(422, [{ loc, msg, type }])
}

export function missing(loc: Array<string | number>): ApiError {
  return invalid(loc, 'field required', 'value_error.missing')
}
