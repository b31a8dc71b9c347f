/**
 * A meter's middleware mounted on another framework than its own fails deep inside with
 * "Cannot read properties of undefined" on every request. The adapters call this only once
 * their own fast-path expectation has failed (no `ctx.state` on Koa, no `res.locals` on
 * Express), so the right framework pays nothing for it.
 */

export type Framework = 'koa' | 'express' | 'fastify' | 'hono'

const IMPORTS: Record<Framework, string> = {
  koa: 'planship-meter',
  express: 'planship-meter/express',
  fastify: 'planship-meter/fastify',
  hono: 'planship-meter/hono',
}

const NAMES: Record<Framework, string> = { koa: 'Koa', express: 'Express', fastify: 'Fastify', hono: 'Hono' }

type Shape = Record<string, unknown>

const isShape = (value: unknown): value is Shape => typeof value === 'object' && value !== null

/** The framework whose handler gets `first` as its first argument, told by its shape; `undefined` when none is recognised. */
export function frameworkOf(first: unknown): Framework | undefined {
  if (!isShape(first)) return undefined
  // Koa's context holds the state and both Node objects; Express's request points to its response.
  if (isShape(first['state']) && isShape(first['req']) && isShape(first['res'])) return 'koa'
  if (isShape(first['res']) && isShape(first['res']['locals'])) return 'express'
  // Fastify's request wraps Node's as `raw`; Hono's context wraps a fetch Request as `req.raw`.
  if (isShape(first['raw']) && 'server' in first) return 'fastify'
  if (isShape(first['req']) && typeof first['json'] === 'function' && typeof first['get'] === 'function') return 'hono'
  return undefined
}

/**
 * The error a middleware of `meant`'s meter throws when it was handed `first` instead of its
 * framework's arguments: it names the framework it was mounted on and the import to use there.
 */
export function wrongFramework(meant: Framework, first: unknown): TypeError {
  const mounted = frameworkOf(first)
  const ours = `this planship-meter middleware is for ${NAMES[meant]} (import { createMeter } from '${IMPORTS[meant]}')`
  if (mounted === undefined || mounted === meant) {
    return new TypeError(`${ours}, but it was called with arguments that are not ${NAMES[meant]}'s`)
  }
  return new TypeError(
    `${ours}, but it is mounted on ${NAMES[mounted]}: on ${NAMES[mounted]}, use import { createMeter } from '${IMPORTS[mounted]}'`,
  )
}
