/** The part of koa-ratelimit's API the benchmark uses (the package ships no types). */
declare module 'koa-ratelimit' {
  import type { Context, Middleware } from 'koa'
  interface MemoryOptions {
    driver: 'memory'
    db: Map<unknown, unknown>
    duration: number
    max: number
    id: (ctx: Context) => string | false
  }
  export default function ratelimit(options: MemoryOptions): Middleware
}
