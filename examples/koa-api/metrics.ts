import { metrics } from '@opentelemetry/api'
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus'
import { MeterProvider } from '@opentelemetry/sdk-metrics'
import type { Middleware } from 'koa'

/** An OpenTelemetry SDK whose metrics a Koa app serves in the Prometheus text format. */
export interface PrometheusMetrics {
  /** Answers `GET /metrics`; passes every other request on. */
  middleware: Middleware
  /** Unregisters the meter provider and shuts it down. */
  shutdown(): Promise<void>
}

/**
 * Registers a global OTel meter provider that the Prometheus exporter reads. Call it before
 * `createMeter()`: the meter takes its instruments from the provider registered at that time.
 * The exporter's own HTTP server is not started; the app serves `/metrics` on its own port
 * (protect or firewall that path in production: it tells how your API is used).
 */
export function prometheusMetrics(path = '/metrics'): PrometheusMetrics {
  const exporter = new PrometheusExporter({ preventServerStart: true })
  const provider = new MeterProvider({ readers: [exporter] })
  metrics.setGlobalMeterProvider(provider)
  return {
    middleware: (ctx, next) => {
      if (ctx.path !== path || ctx.method !== 'GET') return next()
      ctx.respond = false // the exporter writes the response itself
      exporter.getMetricsRequestHandler(ctx.req, ctx.res)
    },
    async shutdown() {
      metrics.disable()
      await provider.shutdown()
    },
  }
}
