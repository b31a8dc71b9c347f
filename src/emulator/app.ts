import type Koa from 'koa'
import type { Middleware } from 'koa'
import type { KoaLayer } from './koa-layer.js'
import { createAdminRouter, type AdminControls } from './admin.js'
import { ApiError } from './api-error.js'
import { createConsoleRouter } from './console.js'
import type { EventFeed } from './event-feed.js'
import { createApiRouter, type ApiRouterDeps } from './routes.js'

/**
 * Turns every failure into FastAPI's `{"detail": …}` JSON, so that clients always get JSON and a
 * bad request never takes the emulator down.
 */
const jsonErrors: Middleware = async (ctx, next) => {
  try {
    await next()
    // A reset or hung connection (fault injection) gets no answer at all.
    if (ctx.respond !== false && ctx.status === 404 && ctx.body === undefined) {
      ctx.status = 404
      ctx.body = { detail: 'Not Found' }
    }
  } catch (error) {
    if (error instanceof ApiError) {
      ctx.status = error.status
      ctx.set(error.headers)
      ctx.body = { detail: error.detail }
      return
    }
    const status = (error as { status?: unknown }).status
    if (typeof status === 'number' && ((status >= 400 && status < 500) || status === 501)) {
      // http-errors from @koa/router (405 Method Not Allowed, 501 for unknown methods) and Koa itself.
      ctx.status = status
      const allow = (error as { headers?: { Allow?: string } }).headers?.Allow
      if (allow !== undefined) ctx.set('Allow', allow)
      ctx.body = { detail: (error as Error).message }
      return
    }
    ctx.status = 500
    ctx.body = { detail: 'Internal Server Error' }
    ctx.app.emit('error', error, ctx)
  }
}

export function createEmulatorApp(
  koa: KoaLayer,
  deps: ApiRouterDeps & { controls: AdminControls; feed: EventFeed },
): Koa {
  const app = new koa.Koa()
  const admin = createAdminRouter(koa.Router, deps.controls, deps.feed)
  const api = createApiRouter(koa.Router, deps)
  const consolePage = createConsoleRouter(koa.Router)
  app.use(jsonErrors)
  app.use(consolePage.routes())
  app.use(admin.routes())
  app.use(admin.allowedMethods({ throw: true }))
  app.use(api.routes())
  app.use(api.allowedMethods({ throw: true }))
  return app
}
