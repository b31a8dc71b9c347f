import type { Context } from 'koa'
import { ApiError, invalid, missing } from './api-error.js'
import { isUuid } from './ids.js'

/** Request reading and pydantic-style (v1 wording) validation for the emulated API. */

const MAX_BODY_BYTES = 1024 * 1024

/** The raw request body as text; Koa has no body parser and we need none beyond JSON. */
export async function readText(ctx: Context): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  try {
    for await (const chunk of ctx.req) {
      const buffer = chunk as Buffer
      size += buffer.length
      if (size > MAX_BODY_BYTES) throw new ApiError(413, 'Request body too large')
      chunks.push(buffer)
    }
  } catch (error) {
    if (error instanceof ApiError) throw error
    throw new ApiError(400, 'Request body could not be read')
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** The JSON body, or `undefined` when there is none; malformed JSON is a 422 as in FastAPI. */
export async function readJson(ctx: Context): Promise<unknown> {
  const text = await readText(ctx)
  if (text.trim() === '') return undefined
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw invalid(['body', 0], 'Expecting value: request body is not valid JSON', 'value_error.jsondecode')
  }
}

export type Body = Record<string, unknown>

/** The body as an object; `required` bodies must be present. */
export function bodyObject(value: unknown, required: boolean): Body {
  if (value === undefined || value === null) {
    if (required) throw missing(['body'])
    return {}
  }
  if (typeof value !== 'object' || Array.isArray(value))
    throw invalid(['body'], 'value is not a valid dict', 'type_error.dict')
  return value as Body
}

/**
 * The body, after refusing any key outside `allowed` with a 422 naming it, like a pydantic model
 * with `extra = "forbid"`: a misspelled setting must not be a silent no-op.
 */
export function onlyKeys(body: Body, allowed: readonly string[]): Body {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) {
      const expected = allowed.length === 0 ? 'no fields' : allowed.join(', ')
      throw invalid(['body', key], `extra fields not permitted (expected ${expected})`, 'value_error.extra')
    }
  }
  return body
}

export function requiredInteger(body: Body, key: string): number {
  if (body[key] === undefined || body[key] === null) throw missing(['body', key])
  return integer(body, key) as number
}

export function optionalInteger(body: Body, key: string): number | undefined {
  return integer(body, key)
}

function integer(body: Body, key: string): number | undefined {
  const value = body[key]
  if (value === undefined || value === null) return undefined
  // Strict like pydantic's StrictInt: "3", 2.5 and true are not integers.
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw invalid(['body', key], 'value is not a valid integer', 'type_error.integer')
  }
  return value
}

export function requiredString(body: Body, key: string, maxLength?: number): string {
  const value = optionalString(body, key, maxLength)
  if (value === undefined) throw missing(['body', key])
  return value
}

export function optionalString(body: Body, key: string, maxLength?: number): string | undefined {
  const value = body[key]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw invalid(['body', key], 'str type expected', 'type_error.str')
  if (maxLength !== undefined && value.length > maxLength) {
    throw invalid(
      ['body', key],
      `ensure this value has at most ${maxLength} characters`,
      'value_error.any_str.max_length',
    )
  }
  return value
}

export function optionalBoolean(body: Body, key: string): boolean | undefined {
  const value = body[key]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'boolean')
    throw invalid(['body', key], 'value could not be parsed to a boolean', 'type_error.bool')
  return value
}

export function optionalObject(body: Body, key: string): Record<string, unknown> | undefined {
  const value = body[key]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'object' || Array.isArray(value))
    throw invalid(['body', key], 'value is not a valid dict', 'type_error.dict')
  return value as Record<string, unknown>
}

export function optionalUuid(body: Body, key: string): string | undefined {
  const value = body[key]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string' || !isUuid(value))
    throw invalid(['body', key], 'value is not a valid uuid', 'type_error.uuid')
  return value.toLowerCase()
}

/** An ISO 8601 date-time; a value without an offset is read as UTC, as Python does not guess a zone. */
export function optionalDateTime(body: Body, key: string): number | undefined {
  const value = body[key]
  if (value === undefined || value === null) return undefined
  const text = typeof value === 'string' ? value : ''
  const hasZone = /(Z|[+-]\d{2}:?\d{2})$/i.test(text)
  const ms = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(hasZone || !text.includes('T') ? text : `${text}Z`) : NaN
  if (Number.isNaN(ms)) throw invalid(['body', key], 'invalid datetime format', 'value_error.datetime')
  return ms
}

/** A `{subscription_id}` path parameter, which FastAPI types as a UUID. */
export function pathUuid(value: string, name: string): string {
  if (!isUuid(value)) throw invalid(['path', name], 'value is not a valid uuid', 'type_error.uuid')
  return value.toLowerCase()
}
