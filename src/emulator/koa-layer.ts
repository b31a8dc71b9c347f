import type Router from '@koa/router'
import type Koa from 'koa'

/** The constructor of `@koa/router`'s routers. */
export type RouterClass = typeof Router

/** What the emulator's HTTP layer is built with: Koa and @koa/router, loaded when an emulator starts. */
export interface KoaLayer {
  Koa: typeof Koa
  Router: RouterClass
}

/**
 * Koa and @koa/router are optional peer dependencies of planship-meter: only the emulator runs on
 * them. They are imported when an emulator starts (this module imports only their types), so an
 * app without them (an Express app) imports `planship-meter/emulator` fine, and starting one
 * says which packages to install.
 */
export async function loadKoa(): Promise<KoaLayer> {
  try {
    const [koa, router] = await Promise.all([import('koa'), import('@koa/router')])
    return { Koa: koa.default, Router: router.default }
  } catch (error) {
    const missing = /Cannot find (?:package|module) '(koa|@koa\/router)'/.exec(
      (error as Error | undefined)?.message ?? '',
    )
    if (missing === null) throw error
    throw new Error(
      `planship-meter/emulator runs on Koa: install koa and @koa/router to start it ` +
        `(npm install --save-dev koa @koa/router); ${missing[1]} is not installed`,
      { cause: error },
    )
  }
}
