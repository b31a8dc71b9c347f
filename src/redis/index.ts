export { RedisUsageStore } from './store.js'
export type { RedisUsageStoreOptions } from './options.js'
