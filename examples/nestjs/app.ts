/**
 * planship-meter on NestJS (Express platform): the Express meter mounted as Nest middleware.
 * Nest runs middleware before guards, interceptors and the handler, and hands it Express's own
 * `req`/`res`, so every part of the contract holds unchanged: the denial's status and body, the
 * RateLimit headers, usage settled once the response is over (a streamed one included).
 * Decorators need `experimentalDecorators`; the providers name their tokens with `@Inject`, so no
 * `emitDecoratorMetadata` is needed.
 */
import 'reflect-metadata'
import {
  Controller,
  Get,
  Inject,
  type MiddlewareConsumer,
  Module,
  type NestModule,
  type OnApplicationShutdown,
  RequestMethod,
} from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import type { NestExpressApplication } from '@nestjs/platform-express'
import type { NextFunction, Request, Response } from 'express'
import { createMeter, type ExpressMeter, type ExpressMeterOptions } from '../../src/express/index.js'

/** The meter's injection token. */
export const PLANSHIP = Symbol('planship-meter')

/** The authenticated caller; an auth middleware sets it, before the meter reads it. */
type Authenticated = Request & { user?: { customerId: string } }

/**
 * Your auth, as Nest middleware: middleware runs before guards, so a meter mounted as middleware
 * sees what an auth middleware set, not what a Passport `AuthGuard` sets later. The demo trusts
 * an API key header that names the customer.
 */
function apiKeyAuth(req: Authenticated, _res: Response, next: NextFunction): void {
  const key = req.get('x-api-key')
  if (key !== undefined) req.user = { customerId: key }
  next()
}

@Controller('v1')
class WidgetsController {
  @Get('widgets')
  list() {
    return { widgets: ['one', 'two'] }
  }

  @Get('export.csv')
  export() {
    return 'id,name\n1,Ada\n'
  }

  /** Not metered: the middleware is applied to the routes above only. */
  @Get('status')
  status() {
    return { ok: true }
  }
}

/** The demo API on NestJS: one metered route, one feature-gated route, one free route. */
export async function createNestApp(
  planship: Pick<ExpressMeterOptions, 'planship' | 'productSlug'> & Partial<ExpressMeterOptions>,
): Promise<{ app: NestExpressApplication; meter: ExpressMeter }> {
  const meter = createMeter({
    identify: (req) => (req as Authenticated).user?.customerId,
    ...planship,
  })

  @Module({ controllers: [WidgetsController], providers: [{ provide: PLANSHIP, useValue: meter }] })
  class AppModule implements NestModule, OnApplicationShutdown {
    constructor(@Inject(PLANSHIP) private readonly planship: ExpressMeter) {}

    configure(consumer: MiddlewareConsumer): void {
      consumer
        .apply(apiKeyAuth, this.planship.consume('api-call'))
        .forRoutes({ path: 'v1/widgets', method: RequestMethod.GET })
      consumer
        .apply(apiKeyAuth, this.planship.requireFeature('csv-export'))
        .forRoutes({ path: 'v1/export.csv', method: RequestMethod.GET })
    }

    /** `app.close()` (or a signal, after `app.enableShutdownHooks()`): pending usage is flushed. */
    async onApplicationShutdown(): Promise<void> {
      await this.planship.close()
    }
  }

  const app = await NestFactory.create<NestExpressApplication>(AppModule, { logger: false })
  return { app, meter }
}
