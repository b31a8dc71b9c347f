/**
 * The OpenTelemetry SDK for benchmarks (`BENCH_OTEL=sdk`), registered as an app would register
 * it, before createMeter(): metrics exported every second and spans batched, both to exporters
 * that discard them, so the cost measured is the meter's and the SDK's, not an exporter's.
 */
export async function registerSdk(): Promise<() => Promise<unknown>> {
  const { metrics, trace } = await import('@opentelemetry/api')
  const { MeterProvider, PeriodicExportingMetricReader } = await import('@opentelemetry/sdk-metrics')
  const { BasicTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base')
  const discard = {
    export: (_items: unknown, done: (result: { code: number }) => void) => done({ code: 0 }),
    shutdown: async () => {},
    forceFlush: async () => {},
  }
  const reader = new PeriodicExportingMetricReader({ exporter: discard, exportIntervalMillis: 1000 })
  const meterProvider = new MeterProvider({ readers: [reader] })
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(discard)] })
  metrics.setGlobalMeterProvider(meterProvider)
  trace.setGlobalTracerProvider(tracerProvider)
  return () => Promise.all([meterProvider.shutdown(), tracerProvider.shutdown()])
}
