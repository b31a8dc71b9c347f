/**
 * planship-meter without a web framework (`planship-meter/core`): the meter of queue workers,
 * webhooks and cron jobs, and every framework-neutral type. Nothing reachable from here, at run
 * time or in its declarations, references Koa or Express. The framework entries re-export it.
 */
export { createMeter, type MeterCore } from '../meter.js'
export type {
  AlertOptions,
  CacheOptions,
  Clock,
  Denial,
  HttpMeterOptions,
  Identify,
  Logger,
  MeterCoreOptions,
  PlanshipConnectionOptions,
  ReportingOptions,
} from '../options.js'
export type { MaybePromise } from '../types.js'
export { PlanshipMeterError, type PlanshipMeterErrorCode } from '../errors.js'
export type { MeterEvent } from '../events.js'
export type { DecisionRecord, PlanshipRequestState } from '../http/state.js'
export type { FeatureOptions, RouteConsumeOptions, Mode } from '../http/route.js'
export type { HeaderStyle } from '../http/headers.js'
export type { NeutralApi, ReportOptions, ReserveDecision, ReserveOptions } from '../neutral.js'
export type { MeteredReservation } from '../http/reservation.js'
export type { AbortPolicy } from '../http/response-end.js'
export type { DecisionSource } from '../enforcement/enforcer.js'
export type {
  AllowanceStatus,
  CustomerStatus,
  FeatureLeverStatus,
  LeverStatus,
  MeteredLeverStatus,
} from '../enforcement/status.js'
export type {
  DiscardReason,
  FleetDeliveryStats,
  LeverLimit,
  PendingReport,
  Reservation,
  ReserveRequest,
  ReserveResult,
  StoreContext,
  UsageKey,
  UsageStore,
} from '../enforcement/store.js'
export { MemoryUsageStore, type MemoryUsageStoreConfig } from '../enforcement/memory-store.js'
export type { CloseResult, DeliveryStats, FlushResult } from '../reporting/reporter.js'
export type { PlanshipCallCounts } from '../planship/client.js'
export type { Entitlements, EntitlementValue, LeverUsage, MeteringRecord } from '../planship/types.js'
