/**
 * `npx tsx examples/fastify-api/server.ts`: the demo API on Fastify, on the embedded Planship
 * emulator, or on the real Planship when PLANSHIP_BASE_URL, PLANSHIP_CLIENT_ID and
 * PLANSHIP_CLIENT_SECRET are set.
 */
import { serveDemo } from '../shared/serve.js'
import { createDemoApp } from './app.js'

await serveDemo(
  'Fastify',
  async (planship, port) => {
    const { app, meter } = await createDemoApp(planship)
    // A port in use is said by serveDemo, which waits for the server's 'listening' or 'error'.
    app.listen({ port, host: '127.0.0.1' }).catch(() => {})
    return { server: app.server, meter }
  },
  undefined,
  'npx tsx examples/fastify-api/server.ts',
)
