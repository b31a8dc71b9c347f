/**
 * `npx tsx examples/hono-api/server.ts`: the demo API on Hono (served by @hono/node-server), on
 * the embedded Planship emulator, or on the real Planship when PLANSHIP_BASE_URL,
 * PLANSHIP_CLIENT_ID and PLANSHIP_CLIENT_SECRET are set.
 */
import type { Server } from 'node:http'
import { serve } from '@hono/node-server'
import { serveDemo } from '../shared/serve.js'
import { createDemoApp } from './app.js'

await serveDemo(
  'Hono',
  (planship, port) => {
    const { app, meter } = createDemoApp(planship)
    return { server: serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }) as Server, meter }
  },
  undefined,
  'npx tsx examples/hono-api/server.ts',
)
