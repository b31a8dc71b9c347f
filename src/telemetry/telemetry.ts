import { createRequire } from 'node:module'
import type { CircuitBreaker } from '../enforcement/backoff.js'
import type { UsageStore } from '../enforcement/store.js'
import type { DecisionFields, DecisionSink, MeterEvent } from '../events.js'
import type { DeliveryStats } from '../reporting/reporter.js'
import { loadOtelApi, type OtelApi } from './otel-api.js'
import type { ClientInstrumentation } from './client-hook.js'
import { clientInstrumentation } from './planship-calls.js'

/** The instrumentation scope: what `otel_scope_name` says in a Prometheus scrape. */
const SCOPE = 'planship-meter'
const VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version

/** The semantic conventions' advice for `http.client.request.duration`, in seconds. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]

/** `planship_meter.circuit_breaker.state`: higher is worse, so `> 0` alerts on any trouble. */
const BREAKER_VALUES = { closed: 0, half_open: 1, open: 2 } as const

type DropReason = Extract<MeterEvent, { type: 'drop' }>['reason']

/** `planship_meter.report.outcome` of a report that left the store without being acknowledged. */
const DROP_OUTCOMES: Record<DropReason, string> = {
  rejected: 'rejected',
  'possibly-lost': 'possibly_lost',
  undelivered: 'undelivered',
}

/** What the observable gauges read, once the meter's parts exist. */
export interface ObservedParts {
  store: UsageStore
  deliveryStats(): DeliveryStats
  breaker: CircuitBreaker
}

interface Observed {
  breaker: number
  duplicated: number
  pendingUnits: number
  pendingKeys: number | undefined
}

/** A meter's OpenTelemetry instrumentation. */
export interface Telemetry {
  /** Counts denials and report outcomes from the meter's events. Never throws. */
  onEvent(event: MeterEvent): void
  /** Counts one decision: called per request, so it builds no event object. Never throws. */
  decision(record: DecisionFields, cost: number | undefined): void
  /**
   * Whether the metrics go anywhere: `false` when no SDK was registered before `createMeter()`,
   * whose instruments then stay the API's no-ops (counting decisions for them is wasted work).
   */
  readonly metered: boolean
  /** Spans and durations of every Planship call. */
  client: ClientInstrumentation
  /** Records one call to a shared store (Redis): its duration and, when it failed, why. */
  storeCall(operation: string, durationMs: number, error?: string): void
  /** Starts observing the meter's store, reporter and circuit breaker. */
  observe(parts: ObservedParts): void
  /** After `close()`: the gauges keep their final values and let go of the meter's parts. */
  close(): Promise<void>
}

/**
 * OpenTelemetry metrics and traces of one meter, or `undefined` when `@opentelemetry/api` is not
 * installed. Without a registered SDK every instrument is the API's no-op.
 *
 * Instruments are created here, at `createMeter()` time, from the global meter provider: an SDK
 * must be registered before `createMeter()` for its metrics (the API has no proxy meter, so an
 * instrument taken from the no-op provider stays a no-op). Spans come from the API's proxy
 * tracer, which follows a tracer provider registered at any time.
 */
export function createTelemetry(): Telemetry | undefined {
  const api = loadOtelApi()
  if (api === undefined) return undefined
  const meter = api.metrics.getMeter(SCOPE, VERSION)
  const tracer = api.trace.getTracer(SCOPE, VERSION)
  const counter = (name: string, description: string, unit: string) =>
    meter.createObservableCounter(name, { description, unit })
  const gauge = (name: string, description: string, unit?: string) =>
    meter.createObservableGauge(name, unit === undefined ? { description } : { description, unit })

  const decisions = new Tally(
    counter('planship_meter.decisions', 'Decisions taken by consume() and requireFeature()', '{decision}'),
  )
  const denials = new Tally(counter('planship_meter.denials', 'Requests denied, by code and lever', '{request}'))
  const admitted = new Tally(
    counter('planship_meter.units.admitted', 'Usage units reserved by admitted consume() requests', '{unit}'),
  )
  const reported = new Tally(counter('planship_meter.units.reported', 'Usage units Planship acknowledged', '{unit}'))
  const dropped = new Tally(
    counter('planship_meter.units.dropped', 'Usage units that left the meter unacknowledged, by outcome', '{unit}'),
  )
  const overage = new Tally(
    counter(
      'planship_meter.units.overage',
      'Usage units billed above what their request had reserved (work measured after it ran)',
      '{unit}',
    ),
  )
  const reports = new Tally(counter('planship_meter.reports', 'Usage report POSTs, by outcome', '{report}'))
  const fallbacks = new Tally(
    counter(
      'planship_meter.store.fallbacks',
      'Times a shared store (Redis) failed and decisions fell back to local memory',
      '{fallback}',
    ),
  )
  const alerts = new Tally(
    counter('planship_meter.alerts', 'Threshold alerts sent, by lever and threshold (once per period)', '{alert}'),
  )
  const tallies = [decisions, denials, admitted, reported, dropped, overage, reports, fallbacks, alerts]
  const duplicated = counter(
    'planship_meter.units.possibly_duplicated',
    'Usage units sent again after an attempt that may have been applied (at-least-once)',
    '{unit}',
  )
  const pendingUnits = gauge(
    'planship_meter.pending.units',
    'Usage units waiting to be reported or being sent',
    '{unit}',
  )
  const pendingKeys = gauge(
    'planship_meter.pending.keys',
    'Customer × metering id × bucket keys with usage waiting to be reported or being sent',
    '{key}',
  )
  const breakerState = gauge(
    'planship_meter.circuit_breaker.state',
    'Circuit breaker of Planship reads: 0 closed, 1 half-open, 2 open',
  )
  const duration = meter.createHistogram('http.client.request.duration', {
    description: 'Duration of HTTP client requests to Planship',
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  })

  const storeDuration = meter.createHistogram('planship_meter.store.duration', {
    description: 'Duration of calls to a shared store (Redis), by operation',
    unit: 's',
    advice: { explicitBucketBoundaries: STORE_BUCKETS },
  })
  const storeAttributes = new Map<string, OtelApi.Attributes>()

  const outcome = (value: string) => [value, () => ({ 'planship_meter.report.outcome': value })] as const
  let read: (() => Promise<Observed>) | undefined

  meter.addBatchObservableCallback(
    async (result) => {
      for (const tally of tallies) tally.observe(result)
      if (read === undefined) return
      const values = await read()
      result.observe(breakerState, values.breaker)
      result.observe(duplicated, values.duplicated)
      result.observe(pendingUnits, values.pendingUnits)
      if (values.pendingKeys !== undefined) result.observe(pendingKeys, values.pendingKeys)
    },
    [...tallies.map((tally) => tally.instrument), duplicated, pendingUnits, pendingKeys, breakerState],
  )

  /** Per decision record (admissions share theirs), its tally key: no string built per request. */
  const decisionKeys = new WeakMap<DecisionFields, string>()
  const meteringIdAttributes = (subject: string) => ({ 'planship_meter.metering_id': subject })
  /** Read back from the tally key, once per key: no closure per decision. */
  const decisionAttributes = (key: string) => {
    const [kind, allowed, source] = key.split('\u0000')
    return {
      'planship_meter.decision.kind': kind!,
      'planship_meter.decision.allowed': allowed === 'true',
      'planship_meter.decision.source': source!,
    }
  }

  return {
    // The no-op provider hands out the one no-op meter: nothing it creates is ever collected.
    metered: meter !== api.createNoopMeter(),
    decision(record, cost) {
      let key = decisionKeys.get(record)
      if (key === undefined)
        decisionKeys.set(record, (key = `${record.kind}\u0000${record.allowed}\u0000${record.source}`))
      decisions.add(1, key, decisionAttributes)
      if (record.allowed && record.kind === 'consume' && cost !== undefined && cost > 0) {
        admitted.add(cost, record.subject, meteringIdAttributes)
      }
    },

    onEvent(event) {
      switch (event.type) {
        case 'decision':
          return // counted through decision(): the gate never sends decisions as events
        case 'denial': {
          const { code, lever } = event.denial
          denials.add(1, `${code}\u0000${lever ?? ''}`, () =>
            lever === undefined
              ? { 'planship_meter.denial.code': code }
              : { 'planship_meter.denial.code': code, 'planship_meter.lever': lever },
          )
          return
        }
        case 'flush':
          reports.add(event.result.reports, ...outcome('delivered'))
          reported.add(event.result.units, '', () => ({}))
          return
        case 'retry':
          reports.add(1, ...outcome('retried'))
          return
        case 'drop':
          reports.add(1, ...outcome(DROP_OUTCOMES[event.reason]))
          dropped.add(event.report.usage, ...outcome(DROP_OUTCOMES[event.reason]))
          return
        case 'overage':
          overage.add(event.over, event.meteringId, meteringIdAttributes)
          return
        case 'store':
          if (event.state === 'local') fallbacks.add(1, '', () => ({}))
          return
        case 'threshold': {
          // By lever and threshold only: never a customer id as an attribute.
          const { lever, threshold } = event
          alerts.add(1, `${lever}\u0000${threshold}`, () => ({
            'planship_meter.lever': lever,
            'planship_meter.alert.threshold': threshold,
          }))
          return
        }
        case 'error':
          return
      }
    },

    storeCall(operation, durationMs, error) {
      const key = `${operation}\u0000${error ?? ''}`
      let attributes = storeAttributes.get(key)
      if (attributes === undefined) {
        attributes = { 'planship_meter.store.operation': operation }
        if (error !== undefined) attributes['error.type'] = error
        storeAttributes.set(key, attributes)
      }
      storeDuration.record(durationMs / 1000, attributes)
    },

    client: clientInstrumentation(api, tracer, duration),

    observe(parts) {
      read = async () => ({
        breaker: BREAKER_VALUES[parts.breaker.state()],
        duplicated: parts.deliveryStats().possiblyDuplicatedUnits,
        // A shared store may answer asynchronously; the SDK waits for the callback.
        pendingUnits: await parts.store.pendingUnits(),
        pendingKeys: await parts.store.pendingKeys?.(),
      })
    },

    async close() {
      // The SDK would go on exporting the last values it saw (cumulative), not the final ones,
      // if the callback went away: keep reporting the final values, but not the meter's parts.
      if (read === undefined) return
      const final = await read()
      read = async () => final
    },
  }
}

/** Redis answers in well under a millisecond on a LAN; the store's deadline is ~50 ms. */
const STORE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25]

/**
 * A count per attribute set, kept in a plain number and handed to the SDK when it collects.
 * A synchronous counter's `add()` costs an SDK about a microsecond (it hashes the attributes
 * on every call); this costs a map lookup, with or without an SDK. Attribute sets are made once
 * per distinct value: levers, metering ids and outcomes are few (the product's own names).
 */
class Tally {
  readonly #entries = new Map<string, { attributes: OtelApi.Attributes; value: number }>()

  constructor(readonly instrument: OtelApi.ObservableCounter) {}

  /** `attributes` is called once per key, with the key (a function that needs no closure per call). */
  add(value: number, key: string, attributes: (key: string) => OtelApi.Attributes): void {
    if (value === 0) return
    const entry = this.#entries.get(key)
    if (entry === undefined) this.#entries.set(key, { attributes: attributes(key), value })
    else entry.value += value
  }

  observe(result: OtelApi.BatchObservableResult): void {
    for (const { attributes, value } of this.#entries.values()) result.observe(this.instrument, value, attributes)
  }
}

/**
 * Where each decision goes: the telemetry counts it (when an SDK collects its metrics), and only
 * a user's `onEvent` gets an event object, built for it alone. `undefined` when neither listens:
 * a decision then costs nothing.
 */
export function decisionSink(
  telemetry: Telemetry | undefined,
  listener: ((event: MeterEvent) => void) | undefined,
): DecisionSink | undefined {
  const counting = telemetry?.metered === true ? telemetry : undefined
  if (counting === undefined && listener === undefined) return undefined
  return (customerId, record, cost) => {
    try {
      counting?.decision(record, cost)
    } catch {
      // An SDK failing must not cost the user their own listener.
    }
    if (listener === undefined) return
    try {
      listener({ type: 'decision', customerId, ...record, cost })
    } catch {
      // A metrics hook must not take the API down with it.
    }
  }
}

/**
 * The meter's event listener: the telemetry's, then the user's `onEvent`. The telemetry's never
 * keeps the user's from running.
 */
export function withTelemetry(
  telemetry: Telemetry | undefined,
  listener: ((event: MeterEvent) => void) | undefined,
): ((event: MeterEvent) => void) | undefined {
  if (telemetry === undefined) return listener
  return (event) => {
    try {
      telemetry.onEvent(event)
    } catch {
      // An SDK failing must not cost the user their own listener.
    }
    listener?.(event)
  }
}
