import { metrics, trace, type Attributes } from '@opentelemetry/api'
import { type DataPoint, MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'

/** A reader that exports nothing: the test collects on demand. */
class CollectingReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/** The OTel SDK, registered globally the way an app registers it, with in-memory readers. */
export interface TestSdk {
  spans: InMemorySpanExporter
  /** Every data point of the metric `name` from a fresh collection, with its attributes. */
  points(name: string): Promise<Array<DataPoint<unknown>>>
  /** Sum of the values (counters, gauges) or counts (histograms) of `name`'s points matching `where`. */
  total(name: string, where?: Attributes): Promise<number>
  /** Unregisters the providers (`metrics.disable()`, `trace.disable()`) and shuts them down. */
  stop(): Promise<void>
}

export function startSdk(): TestSdk {
  const reader = new CollectingReader()
  const meterProvider = new MeterProvider({ readers: [reader] })
  const spans = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
  if (!metrics.setGlobalMeterProvider(meterProvider) || !trace.setGlobalTracerProvider(tracerProvider)) {
    throw new Error('an OTel provider is already registered: a previous test did not stop its SDK')
  }

  const points = async (name: string) => {
    const { resourceMetrics, errors } = await reader.collect()
    if (errors.length > 0) throw errors[0]
    return metricsOf(resourceMetrics)
      .filter((metric) => metric.descriptor.name === name)
      .flatMap((metric) => metric.dataPoints as Array<DataPoint<unknown>>)
  }
  return {
    spans,
    points,
    async total(name, where = {}) {
      let sum = 0
      for (const point of await points(name)) {
        if (!Object.entries(where).every(([key, value]) => point.attributes[key] === value)) continue
        const value = point.value
        sum += typeof value === 'number' ? value : (value as { count: number }).count
      }
      return sum
    },
    async stop() {
      metrics.disable()
      trace.disable()
      await Promise.all([meterProvider.shutdown(), tracerProvider.shutdown()])
    },
  }
}

function metricsOf(resourceMetrics: ResourceMetrics) {
  return resourceMetrics.scopeMetrics.filter((scope) => scope.scope.name === 'planship-meter').flatMap((s) => s.metrics)
}
