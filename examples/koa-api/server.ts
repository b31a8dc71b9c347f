/**
 * `npm start`: the demo API on the embedded Planship emulator, or on the real Planship when
 * PLANSHIP_BASE_URL, PLANSHIP_CLIENT_ID and PLANSHIP_CLIENT_SECRET are set.
 */
import { serveDemo } from '../shared/serve.js'
import { createDemoApp } from './app.js'
import { prometheusMetrics } from './metrics.js'

await serveDemo(
  'Koa',
  (planship, port) => {
    const metrics = prometheusMetrics() // before the meter: it takes its instruments from this provider
    const { app, meter } = createDemoApp(planship)
    app.use(metrics.middleware) // GET /metrics, Prometheus text format
    return { server: app.listen(port, '127.0.0.1'), meter }
  },
  (url) => [
    `  curl -s '${url}/metrics'                                              # Prometheus metrics of the meter`,
  ],
)
