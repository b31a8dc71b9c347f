import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import Koa from 'koa'
import type { Meter, PlanshipState, StoreContext } from '../../src/index.js'
import { createLog } from '../../src/log.js'
import { RedisUsageStore, type RedisUsageStoreOptions } from '../../src/redis/index.js'
import { manualClock, recordingLogger } from '../helpers/harness.js'

/**
 * The Redis of the tests: REDIS_URL, else the machine's on 127.0.0.1:6379 (CI starts it), else
 * one the suite starts (`findRedis`, run by the root hook before any test): read it when used.
 */
export let REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** Why the Redis tests cannot run, in one line: what is missing and how to provide it. */
export class RedisMissing extends Error {
  override name = 'RedisMissing'
  constructor(message: string) {
    super(message)
    this.stack = `${this.name}: ${message}` // one line: where it was thrown says nothing to the reader
  }
}

/** Points the Redis tests, and the processes they start, at `url`. */
export function useRedis(url: string): void {
  REDIS_URL = url
  process.env.REDIS_URL = url
}

/**
 * A Redis for the tests: `given` (REDIS_URL), else the machine's (`machine`, where CI starts
 * one), else a redis-server of our own on a free port, which `close()` stops. Rejects with a
 * {@link RedisMissing} when none can be had.
 */
export async function findRedis(
  options: { given?: string | undefined; machine?: string; binary?: string } = { given: process.env.REDIS_URL },
): Promise<{ url: string; close(): Promise<void> }> {
  const { given, machine = 'redis://127.0.0.1:6379', binary = 'redis-server' } = options
  const url = given ?? machine
  if (await answers(url)) return { url, close: async () => {} }
  if (given !== undefined) {
    throw new RedisMissing(
      `nothing answers at ${given} (REDIS_URL): start Redis there, or unset REDIS_URL to let the tests start their own redis-server`,
    )
  }
  const version = spawnSync(binary, ['--version'], { stdio: 'ignore' })
  if (version.error !== undefined || version.status !== 0) {
    throw new RedisMissing(
      `nothing answers at ${url} and ${binary} cannot be run (${errnoOf(version.error) ?? `exit ${version.status}`}): ` +
        'install Redis (apt-get install redis-server) or set REDIS_URL to a running one',
    )
  }
  const own = await OwnRedis.start()
  return { url: own.url, close: () => own.close() }
}

function errnoOf(error: Error | undefined): string | undefined {
  return (error as { code?: string } | undefined)?.code
}

/** Whether a Redis answers PING at `url` within a second; quietly, however it fails. */
async function answers(url: string): Promise<boolean> {
  const probe = new Redis(url, {
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 1_000,
  })
  probe.on('error', () => {})
  try {
    await probe.connect()
    await probe.ping()
    return true
  } catch {
    return false
  } finally {
    probe.disconnect()
  }
}

/** A prefix no other test (or earlier run) uses: tests never see each other's keys. */
export function uniquePrefix(name: string): string {
  return `pmtest:${name}:${randomBytes(4).toString('hex')}:`
}

/** A client as we recommend it: no offline queue, nothing resent after a reconnect. */
export function redisClient(url = REDIS_URL): Redis {
  return new Redis(url, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 1 })
}

export async function connected(client: Redis): Promise<Redis> {
  if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve))
  return client
}

/** A Koa app whose every request consumes one `meteringId` unit and answers 'ok'. */
export function meteredApp(meter: Meter, meteringId = 'api-call') {
  const app = new Koa<PlanshipState>()
  app.use(meter.consume(meteringId))
  app.use((ctx) => {
    ctx.body = 'ok'
  })
  return app.callback()
}

/** Reserves `cost` units of api-call for `customerId` without limits, and commits them. */
export async function commitUnits(store: RedisUsageStore, customerId: string, cost: number): Promise<void> {
  const result = await store.reserve({
    customerId,
    meteringId: 'api-call',
    bucket: undefined,
    cost,
    limits: [],
    snapshotAt: 0,
  })
  if (!result.ok) throw new Error(`not admitted: ${JSON.stringify(result)}`)
  await store.commit(result.reservation, cost)
}

/** A store bound as createMeter would bind it, with a manual clock, for tests of the store alone. */
export function boundStore(options: RedisUsageStoreOptions, context: Partial<StoreContext> = {}) {
  const clock = manualClock()
  const logger = recordingLogger()
  const events: unknown[] = []
  const store = new RedisUsageStore(options)
  store.bind({
    clock,
    aggregationLagMs: 5_000,
    maxSnapshotAgeMs: 60_000,
    maxCustomers: 1_000,
    maxPendingKeys: 1_000,
    delivery: 'at-least-once',
    planshipTimeoutMs: 5_000,
    log: createLog(logger, 'message-first', clock),
    emit: (event) => events.push(event),
    ...context,
  })
  return { store, clock, logger, events }
}

export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer()
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => {
        const address = server.address()
        server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
      })
    })
    // A cluster node also needs port + 10000 for its bus.
    if (port > 0 && port < 55_000) return port
  }
}

/** A redis-server of the test's own, to stop, restart or pause. Kill it in `after`. */
export class OwnRedis {
  process: ChildProcess | undefined
  readonly dir = mkdtempSync(join(tmpdir(), 'pm-redis-'))
  constructor(readonly port: number) {}

  static async start(extra: string[] = []): Promise<OwnRedis> {
    const own = new OwnRedis(await freePort())
    own.extra = extra
    await own.start()
    return own
  }

  /** Arguments kept for restarts (a cluster node keeps its config file). */
  extra: string[] = []

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async start(extra: string[] = this.extra): Promise<void> {
    this.process = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        this.dir,
        '--enable-debug-command',
        'local',
        ...extra,
      ],
      { stdio: 'ignore' },
    )
    const probe = new Redis(this.port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null })
    probe.on('error', () => {})
    for (let i = 0; i < 100; i++) {
      try {
        await probe.connect()
        await probe.ping()
        probe.disconnect()
        return
      } catch {
        await sleep(50)
      }
    }
    probe.disconnect()
    throw new Error(`redis-server on port ${this.port} did not start`)
  }

  async stop(): Promise<void> {
    const child = this.process
    if (child === undefined || child.exitCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
    this.process = undefined
  }

  async close(): Promise<void> {
    await this.stop()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
