import { type ChildProcess, fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { Emulator } from '../../src/emulator/index.js'
import type { DeliveryStats, MeterOptions } from '../../src/index.js'
import type { RedisUsageStoreOptions } from '../../src/redis/index.js'

const REPLICA = fileURLToPath(new URL('./replica.ts', import.meta.url))

export interface Replica {
  child: ChildProcess
  url: string
  /** Asks the replica to flush; resolves with what it reported and its (and the fleet's) totals. */
  flush(): Promise<{ flushed: number; stats: DeliveryStats }>
  kill(): Promise<void>
  close(): Promise<void>
}

/** Starts `n` replicas (child processes) on the shared Redis and the test's emulator. */
export async function startFleet(
  n: number,
  emu: Emulator,
  redisUrl: string,
  store: Omit<RedisUsageStoreOptions, 'client'>,
  meter: Partial<MeterOptions> = {},
): Promise<Replica[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const config = {
        emulatorUrl: emu.url,
        clientId: emu.clientId,
        clientSecret: emu.clientSecret,
        productSlug: emu.productSlug,
        redisUrl,
        store,
        meter,
      }
      const child = fork(REPLICA, [], {
        execArgv: ['--import', 'tsx'],
        env: { ...process.env, REPLICA: JSON.stringify(config) },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      })
      const [message] = (await once(child, 'message')) as [{ port: number }]
      const replica: Replica = {
        child,
        url: `http://127.0.0.1:${message.port}`,
        async flush() {
          child.send('flush')
          const [answer] = (await once(child, 'message')) as [{ flushed: number; stats: DeliveryStats }]
          return answer
        },
        async kill() {
          if (child.exitCode !== null || child.signalCode !== null) return
          const exited = once(child, 'exit')
          child.kill('SIGKILL')
          await exited
        },
        async close() {
          if (child.exitCode !== null || child.signalCode !== null) return
          const exited = once(child, 'exit')
          child.send('close')
          const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
          await exited
          clearTimeout(timer)
        },
      }
      return replica
    }),
  )
}

export interface Outcome {
  status: number
  replica: number
  /** performance.now() when the response was complete. */
  doneAt: number
}

/**
 * Sends `total` requests, `connections` at a time, round-robin over the replicas, as one
 * customer. Stops early (and keeps what it has) when `stop` aborts.
 */
export async function roundRobin(
  replicas: readonly Replica[],
  options: { total: number; connections: number; path: string; customerId: string; stop?: AbortSignal },
): Promise<Outcome[]> {
  const outcomes: Outcome[] = []
  let next = 0
  const worker = async () => {
    while (next < options.total && options.stop?.aborted !== true) {
      const replica = next++ % replicas.length
      try {
        const response = await fetch(`${replicas[replica]!.url}${options.path}`, {
          method: 'POST',
          headers: { 'x-customer-id': options.customerId },
        })
        await response.arrayBuffer()
        outcomes.push({ status: response.status, replica, doneAt: performance.now() })
      } catch {
        outcomes.push({ status: 0, replica, doneAt: performance.now() })
      }
    }
  }
  await Promise.all(Array.from({ length: options.connections }, worker))
  return outcomes
}
