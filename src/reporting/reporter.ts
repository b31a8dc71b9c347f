import { isRetriable, PlanshipMeterError } from '../errors.js'
import { describe } from '../enforcement/enforcer.js'
import type { PendingReport, UsageStore } from '../enforcement/store.js'
import type { Clock, Logger } from '../options.js'
import type { PlanshipClient } from '../planship/client.js'

export interface ReporterConfig {
  client: PlanshipClient
  store: UsageStore
  flushIntervalMs: number
  maxConcurrency: number
  closeTimeoutMs: number
  clock: Clock
  logger: Logger
}

/** What one flush did. */
export interface FlushResult {
  /** Report POSTs Planship acknowledged. */
  reports: number
  /** Units those reports carried. */
  units: number
  /** Units whose report failed and that stay pending for the next flush. */
  retainedUnits: number
  /** Units Planship rejected for good (a 4xx other than 408/429); they are logged, not retried. */
  rejectedUnits: number
}

/** What `close()` hands back: usage that could not be delivered before the deadline. */
export interface CloseResult {
  undelivered: PendingReport[]
}

const CLOSE_RETRY_DELAY_MS = 250

/** A pause that never keeps the process alive on its own. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}

/**
 * Sends pending usage to Planship after responses, never on a request's path: one POST per
 * customer × metering id × bucket per flush, at most `maxConcurrency` at a time. Failed
 * reports stay pending and are retried on the next flush.
 */
export class Reporter {
  readonly #config: ReporterConfig
  readonly #timer: NodeJS.Timeout
  #running: Promise<FlushResult> | undefined
  #closed = false
  /** Set by flush() and close(): a paced pass still running sends the rest at once. */
  #hurry = false

  constructor(config: ReporterConfig) {
    this.#config = config
    this.#timer = setInterval(() => {
      if (this.#running === undefined) this.#flushOnce(true).catch(() => {})
    }, config.flushIntervalMs)
    // A pending flush must never keep the process alive; close() is how usage is saved at exit.
    this.#timer.unref()
  }

  /** Sends everything pending now; resolves once Planship acknowledged it all. */
  async flush(): Promise<FlushResult> {
    // A flush already running took its snapshot of pending usage earlier; send what came since.
    if (this.#running !== undefined) {
      this.#hurry = true
      await this.#running.catch(() => {})
      this.#hurry = false
    }
    const result = await this.#flushOnce()
    if (result.retainedUnits > 0) {
      throw new PlanshipMeterError(
        'FLUSH_INCOMPLETE',
        `${result.retainedUnits} usage units could not be reported and stay pending`,
      )
    }
    return result
  }

  /**
   * Stops the timer, then flushes and retries until everything is delivered or
   * `closeTimeoutMs` has passed. Whatever is left is returned, not dropped silently.
   */
  async close(): Promise<CloseResult> {
    if (this.#closed) return { undelivered: [] }
    this.#closed = true
    this.#hurry = true
    clearInterval(this.#timer)
    // Shutdown is bounded in real time, whatever clock the data ages are measured with.
    const deadline = performance.now() + this.#config.closeTimeoutMs
    for (;;) {
      if (this.#running !== undefined) await this.#running.catch(() => {})
      const result = await this.#flushOnce()
      if (result.retainedUnits === 0) return { undelivered: [] }
      if (performance.now() + CLOSE_RETRY_DELAY_MS >= deadline) break
      await new Promise((resolve) => setTimeout(resolve, CLOSE_RETRY_DELAY_MS))
    }
    const undelivered = await this.#config.store.takePending()
    for (const report of undelivered) await this.#config.store.discard(report)
    const units = undelivered.reduce((sum, report) => sum + report.usage, 0)
    this.#config.logger.error?.(`close(): ${units} usage units could not be reported before the deadline`, {
      undelivered,
    })
    return { undelivered }
  }

  /**
   * One pass over pending usage. A background pass spreads its POSTs over the flush interval
   * instead of bursting them, so that a thousand keys do not stall the app's requests at once.
   */
  #flushOnce(paced = false): Promise<FlushResult> {
    const run = this.#send(paced).finally(() => {
      if (this.#running === run) this.#running = undefined
    })
    this.#running = run
    return run
  }

  async #send(paced: boolean): Promise<FlushResult> {
    const reports = await this.#config.store.takePending()
    const result: FlushResult = { reports: 0, units: 0, retainedUnits: 0, rejectedUnits: 0 }
    const spacingMs = paced ? this.#config.flushIntervalMs / Math.max(reports.length, 1) : 0
    const startedAt = performance.now()
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < reports.length) {
        const index = next++
        const waitMs = startedAt + index * spacingMs - performance.now()
        if (waitMs >= 1 && !this.#hurry) await sleep(waitMs)
        await this.#deliver(reports[index]!, result)
      }
    }
    const workers = Math.min(this.#config.maxConcurrency, reports.length)
    await Promise.all(Array.from({ length: workers }, worker))
    if (result.reports > 0 || result.retainedUnits > 0) {
      this.#config.logger.debug?.('usage flushed', { ...result })
    }
    return result
  }

  async #deliver(report: PendingReport, result: FlushResult): Promise<void> {
    const { store, client, clock, logger } = this.#config
    try {
      await client.reportUsage(report.customerId, report.meteringId, report.usage, report.bucket)
      await store.acknowledge(report, clock.now())
      result.reports++
      result.units += report.usage
    } catch (error) {
      if (isRetriable(error)) {
        await store.restore(report)
        result.retainedUnits += report.usage
        logger.warn?.('reporting usage failed; it stays pending', { ...report, error: describe(error) })
      } else {
        await store.discard(report)
        result.rejectedUnits += report.usage
        logger.error?.('Planship rejected a usage report; it is not retried', { ...report, error: describe(error) })
      }
    }
  }
}
