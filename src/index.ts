// The root entry, `planship-meter`: the Koa meter, and everything framework-neutral
// (`planship-meter/core`, whose `createMeter` the Koa one shadows here).
export * from './core/index.js'
export { createMeter, type ConsumeOptions, type Meter, type MeterOptions, type PlanshipState } from './koa/index.js'
