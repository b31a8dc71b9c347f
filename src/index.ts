export { createMeter, type Meter } from './meter.js'
export type {
  CacheOptions,
  Clock,
  Denial,
  Logger,
  MeterOptions,
  PlanshipConnectionOptions,
  ReportingOptions,
} from './options.js'
export { PlanshipMeterError, type PlanshipMeterErrorCode } from './errors.js'
export type { MeterEvent } from './events.js'
export type { ConsumeOptions, FeatureOptions } from './koa/middleware.js'
export type { PlanshipState } from './koa/state.js'
export type { DecisionRecord, PlanshipRequestState } from './http/state.js'
export type { RouteConsumeOptions, Mode } from './http/route.js'
export type { HeaderStyle } from './http/headers.js'
export type { MeterCore } from './meter.js'
export type { NeutralApi, ReportOptions, ReserveDecision, ReserveOptions } from './neutral.js'
export type { MeteredReservation } from './http/reservation.js'
export type { AbortPolicy } from './http/response-end.js'
export type { DecisionSource } from './enforcement/enforcer.js'
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
} from './enforcement/store.js'
export { MemoryUsageStore, type MemoryUsageStoreConfig } from './enforcement/memory-store.js'
export type { CloseResult, DeliveryStats, FlushResult } from './reporting/reporter.js'
export type { PlanshipCallCounts } from './planship/client.js'
export type { Entitlements, EntitlementValue, LeverUsage, MeteringRecord } from './planship/types.js'
