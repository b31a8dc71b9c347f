import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type Router from '@koa/router'
import type { RouterMiddleware } from '@koa/router'
import type { RouterClass } from './koa-layer.js'

/**
 * The console page: plain HTML, CSS and ES modules, served as they are (no build step). They
 * live in `src/emulator/console/`, which the package ships; `tsc` does not copy them to `dist/`,
 * so from `dist/emulator/` they are found under `../../src/emulator/console/`.
 */

const HTML = 'text/html; charset=utf-8'
const CSS = 'text/css; charset=utf-8'
const JS = 'text/javascript; charset=utf-8'
/** Every file the page loads; nothing else under the folder is served. */
const ASSETS: Record<string, string> = {
  'index.html': HTML,
  'console.css': CSS,
  'console.js': JS,
  'admin-api.js': JS,
  'dom.js': JS,
  'feed.js': JS,
  'views.js': JS,
}

/**
 * The page may load only its own files and talk only to the emulator: no CDN, font or other
 * network, which also keeps a fixture's names (shown as text) from ever becoming markup or script.
 */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/** The folder holding the console's files, next to this module in `src/` or back in `src/` from `dist/`. */
export function consoleDirectory(moduleUrl: string = import.meta.url): string {
  const candidates = [new URL('./console/', moduleUrl), new URL('../../src/emulator/console/', moduleUrl)]
  for (const candidate of candidates) {
    const directory = fileURLToPath(candidate)
    if (existsSync(`${directory}index.html`)) return directory
  }
  throw new Error(`the emulator console's files are missing (looked in ${candidates.map(String).join(', ')})`)
}

/** Serves the console at `/` and `/_emulator/console`, its files under `/_emulator/console/`. */
export function createConsoleRouter(Router: RouterClass, directory: string = consoleDirectory()): Router {
  const router = new Router()
  // Read on first use, then kept: the files are small and never change while the emulator runs.
  const cache = new Map<string, Buffer>()
  const serve = (name: string): RouterMiddleware => {
    const type = ASSETS[name] as string
    return (ctx) => {
      let body = cache.get(name)
      if (body === undefined) {
        body = readFileSync(`${directory}${name}`)
        cache.set(name, body)
      }
      ctx.status = 200
      ctx.type = type
      ctx.set('Cache-Control', 'no-cache')
      ctx.set('X-Content-Type-Options', 'nosniff')
      ctx.set('Content-Security-Policy', CONTENT_SECURITY_POLICY)
      ctx.body = body
    }
  }
  router.get('/', serve('index.html'))
  router.get('/_emulator/console', serve('index.html'))
  for (const name of Object.keys(ASSETS)) router.get(`/_emulator/console/${name}`, serve(name))
  return router
}
