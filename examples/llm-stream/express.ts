/** The completions endpoint on Express: written event by event, billed for the tokens it sent. */
import express, { type Express } from 'express'
import { createMeter, type ExpressMeter, type ExpressMeterOptions } from '../../src/express/index.js'
import { completionEvents, completionRequest, ESTIMATE } from './model.js'

/** Tokens handed to each response so far: what its route bills. */
const sentTo = new WeakMap<object, { tokens: number }>()

export function createCompletionsApp(
  planship: Pick<ExpressMeterOptions, 'planship' | 'productSlug'> & Partial<ExpressMeterOptions>,
): { app: Express; meter: ExpressMeter } {
  const meter = createMeter({ identify: (req) => req.get('x-customer-id') || undefined, ...planship })
  const app = express()
  app.use(meter.middleware())
  app.get(
    '/v1/completions',
    meter.consume('tokens', {
      cost: ESTIMATE,
      usage: (_req, res) => sentTo.get(res)?.tokens ?? 0,
    }),
    async (req, res, next) => {
      const sent = { tokens: 0 }
      sentTo.set(res, sent)
      const request = completionRequest(new URLSearchParams(req.url.split('?')[1]))
      const events = completionEvents(request, res.locals.planship.reservations['tokens']!, sent)
      res.on('close', () => void events.return(undefined)) // the client left: stop generating
      res.set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' })
      try {
        for await (const event of events) res.write(event)
        res.end()
      } catch (error) {
        next(error)
      }
    },
  )
  return { app, meter }
}
