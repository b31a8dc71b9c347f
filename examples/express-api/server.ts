/**
 * `npx tsx examples/express-api/server.ts`: the demo API on Express, on the embedded Planship
 * emulator, or on the real Planship when PLANSHIP_BASE_URL, PLANSHIP_CLIENT_ID and
 * PLANSHIP_CLIENT_SECRET are set.
 */
import { serveDemo } from '../shared/serve.js'
import { createDemoApp } from './app.js'

await serveDemo(
  'Express',
  (planship, port) => {
    const { app, meter } = createDemoApp(planship)
    return { server: app.listen(port, '127.0.0.1'), meter }
  },
  undefined,
  'npx tsx examples/express-api/server.ts',
)
