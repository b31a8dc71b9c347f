import { isRetriable, mayHaveBeenApplied, PlanshipMeterError } from '../errors.js'
import { fullJitterMs } from '../enforcement/backoff.js'
import { describe } from '../enforcement/enforcer.js'
import type { FleetDeliveryStats, PendingReport, UsageStore } from '../enforcement/store.js'
import type { EventSink } from '../events.js'
import type { Log } from '../log.js'
import type { Clock } from '../types.js'
import type { PlanshipClient } from '../planship/client.js'

export interface ReporterConfig {
  client: PlanshipClient
  store: UsageStore
  flushIntervalMs: number
  maxConcurrency: number
  maxPostsPerSecond: number
  closeTimeoutMs: number
  delivery: 'at-least-once' | 'at-most-once'
  clock: Clock
  log: Log
  emit: EventSink | undefined
}

/**
 * Running totals of delivery since the meter started. Planship's usage API has no idempotency
 * key, so a report that failed after it may have been applied is either sent again (at least
 * once: its units are counted as possibly duplicated) or not (at most once: possibly lost).
 */
export interface DeliveryStats extends FleetDeliveryStats {
  /** Requests refused (503) because `reporting.maxPendingKeys` keys were waiting for delivery. */
  backlogRefusals: number
  /**
   * With a shared store (Redis): the same totals for every replica together, as last read from
   * the store (after this process's latest flush pass).
   */
  fleet?: FleetDeliveryStats
}

/** What one flush did. */
export interface FlushResult {
  /** Report POSTs Planship acknowledged. */
  reports: number
  /** Units those reports carried. */
  units: number
  /** Units whose report failed and that stay pending for the next flush. */
  retainedUnits: number
  /** Units Planship refused for good (400, 404, 422 …); they are logged, not retried. */
  rejectedUnits: number
  /** The refused reports, for the app to persist or inspect. */
  rejected: PendingReport[]
  /** Units not sent again, at most once, after a failure that may have been applied. */
  possiblyLostUnits: number
}

/** What `close()` hands back: usage that could not be delivered before the deadline, or that Planship refused. */
export interface CloseResult {
  undelivered: PendingReport[]
}

/** The least time close() spends sending, whatever waiting for running requests took. */
const MIN_CLOSE_SENDING_MS = 1_000

/** During close(), keys due this close together are retried in one pass. */
const COALESCE_MS = 100

/**
 * A pause, cut short when `wake` aborts. Unless `keepAlive`, it never keeps the process alive on
 * its own: close() is what saves usage at exit.
 */
function sleep(ms: number, wake?: AbortSignal, keepAlive = false): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    if (!keepAlive) timer.unref()
    wake?.addEventListener('abort', done, { once: true })
    function done() {
      clearTimeout(timer)
      wake?.removeEventListener('abort', done)
      resolve()
    }
  })
}

/**
 * Sends pending usage to Planship after responses, never on a request's path: one POST per
 * customer × metering id × bucket per pass, at most `maxConcurrency` at a time. Passes run one
 * after another, never overlapping, so a pass that resolves has seen every earlier one settle.
 * Failed reports stay pending and are retried by the next pass.
 */
export class Reporter {
  readonly #config: ReporterConfig
  readonly #timer: NodeJS.Timeout
  /** The last pass queued; the next one starts when it settles. */
  #tail: Promise<unknown> = Promise.resolve()
  #queued = 0
  #closed = false
  /**
   * close()'s deadline (`performance.now()` time): every pass, the one already running when
   * close() began included, stops starting reports then; what is left stays pending.
   */
  #closeBy = Number.POSITIVE_INFINITY
  /** Aborted by flush() and close(): a paced pass sends the rest at once. */
  #wake = new AbortController()
  /** When each key that failed in the last pass may be retried. */
  #retryAts: number[] = []
  readonly #stats: DeliveryStats = {
    reports: 0,
    reportedUnits: 0,
    retries: 0,
    possiblyDuplicatedUnits: 0,
    possiblyLostUnits: 0,
    rejectedUnits: 0,
    backlogRefusals: 0,
  }

  constructor(config: ReporterConfig) {
    this.#config = config
    this.#timer = setInterval(() => {
      if (this.#queued === 0) this.#enqueue(true).catch(() => {})
    }, config.flushIntervalMs)
    // A pending flush must never keep the process alive; close() is how usage is saved at exit.
    this.#timer.unref()
  }

  /**
   * Sends everything pending now; resolves once Planship acknowledged it all. Rejects with
   * `FLUSH_INCOMPLETE` (the result in `detail`) when some usage stays pending or was refused.
   */
  async flush(): Promise<FlushResult> {
    this.#hurry()
    const result = await this.#enqueue(false)
    if (result.retainedUnits > 0 || result.rejectedUnits > 0 || result.possiblyLostUnits > 0) {
      throw new PlanshipMeterError(
        'FLUSH_INCOMPLETE',
        `${result.retainedUnits} usage units could not be reported and stay pending; ` +
          `${result.rejectedUnits} were refused by Planship and dropped; ` +
          `${result.possiblyLostUnits} may not have been applied and are not sent again (at most once)`,
        { detail: result },
      )
    }
    return result
  }

  /**
   * Stops the timer, then flushes and retries until everything is delivered or `deadline`
   * (a `performance.now()` time) has passed. What is left, and what Planship refused, is
   * returned for the app to persist, never dropped silently.
   */
  async close(deadline: number): Promise<CloseResult> {
    this.#closed = true
    // Pending usage always gets a moment of sending, even when waiting for running requests used
    // up the whole timeout: one slow request must not turn everyone's usage into undelivered.
    this.#closeBy = Math.max(deadline, performance.now() + MIN_CLOSE_SENDING_MS)
    clearInterval(this.#timer)
    this.#hurry()
    const refused: PendingReport[] = []
    // When each key that failed during close() may be tried again: its backoff or Retry-After,
    // as in background flushes. The first pass sends everything at once.
    let waiting: number[] = []
    let dueBy: number | undefined
    for (;;) {
      const result = await this.#enqueue(false, dueBy)
      refused.push(...result.rejected)
      waiting = [...waiting.filter((at) => dueBy !== undefined && at > dueBy), ...this.#retryAts]
      if (waiting.length === 0 || (await this.#config.store.pendingUnits()) === 0) break
      const retryAt = Math.min(...waiting)
      const waitMs = Math.max(0, retryAt - this.#config.clock.now())
      if (performance.now() + waitMs >= deadline) break
      await sleep(waitMs, undefined, true)
      // Keys due within a moment of each other go out in one pass (one log line, not one each).
      dueBy = retryAt + COALESCE_MS
    }
    const left = await this.#takeUndelivered()
    const undelivered = [...left, ...refused]
    if (undelivered.length > 0) {
      const units = undelivered.reduce((sum, report) => sum + report.usage, 0)
      // The whole list is close()'s result; the log line names the first few keys only.
      const fields = { keys: undelivered.length, undelivered: undelivered.slice(0, 20) }
      this.#config.log.error(`close(): ${units} usage units could not be reported`, fields)
      for (const report of left) this.#config.emit?.({ type: 'drop', report, reason: 'undelivered' })
    }
    return { undelivered }
  }

  /** What is left at the end of close(): a shared store keeps the fleet's usage for the others. */
  async #takeUndelivered(): Promise<PendingReport[]> {
    const { store } = this.#config
    if (store.takeUndelivered !== undefined) return store.takeUndelivered()
    const left = await store.takePending()
    for (const report of left) await store.discard(report, 'undelivered')
    return left
  }

  get closed(): boolean {
    return this.#closed
  }

  #hurry(): void {
    this.#wake.abort()
    this.#wake = new AbortController()
  }

  #enqueue(paced: boolean, dueBy?: number): Promise<FlushResult> {
    this.#queued++
    const pass = this.#tail.then(() => this.#send(paced, dueBy)).finally(() => this.#queued--)
    this.#tail = pass.catch(() => {})
    return pass
  }

  /**
   * One pass over pending usage. A background pass spreads its POSTs over the flush interval
   * instead of bursting them, so that a thousand keys do not stall the app's requests at once.
   */
  async #send(paced: boolean, dueBy = paced ? this.#config.clock.now() : undefined): Promise<FlushResult> {
    // A background pass leaves keys alone while they wait out a retry backoff; flush() does not.
    // The report budget: a background pass sends at most an interval's share of it of busy keys
    // (usage keeps coming: waiting merges more), so the POST rate stays bounded however many
    // are active. Idle keys go out all the same: waiting would merge nothing, only hold memory.
    const { flushIntervalMs, maxPostsPerSecond } = this.#config
    const budget = paced
      ? {
          busy: Math.max(1, Math.floor((maxPostsPerSecond * flushIntervalMs) / 1000)),
          idleBefore: this.#config.clock.now() - flushIntervalMs,
        }
      : undefined
    const reports = await this.#config.store.takePending(dueBy, budget)
    this.#retryAts = []
    const result: FlushResult = {
      reports: 0,
      units: 0,
      retainedUnits: 0,
      rejectedUnits: 0,
      rejected: [],
      possiblyLostUnits: 0,
    }
    const failures: PassFailures = { keys: 0, firstError: undefined }
    const spacingMs = paced ? this.#config.flushIntervalMs / Math.max(reports.length, 1) : 0
    const wake = this.#wake.signal
    const startedAt = performance.now()
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < reports.length) {
        const index = next++
        const waitMs = startedAt + index * spacingMs - performance.now()
        if (waitMs >= 1 && !wake.aborted) await sleep(waitMs, wake)
        if (performance.now() >= this.#closeBy) {
          // close() has run out of time: thousands of keys at a few POSTs at a time must not
          // hold shutdown for minutes. What is not sent is returned to the app as undelivered.
          await this.#config.store.restore(reports[index]!)
          result.retainedUnits += reports[index]!.usage
          continue
        }
        await this.#deliver(reports[index]!, result, failures)
      }
    }
    const workers = Math.min(this.#config.maxConcurrency, reports.length)
    await Promise.all(Array.from({ length: workers }, worker))
    if (reports.length > 0) {
      const { rejected, ...counts } = result
      this.#summarize(counts, failures, rejected.slice(0, 10))
      this.#config.emit?.({ type: 'flush', result: counts })
    }
    return result
  }

  /** One line per pass, however many keys failed: an outage must not flood the logs. */
  #summarize(counts: Omit<FlushResult, 'rejected'>, failures: PassFailures, rejected: PendingReport[]): void {
    const { log } = this.#config
    if (failures.keys === 0) return log.debug('usage flushed', counts)
    const retryInMs =
      this.#retryAts.length === 0 ? undefined : Math.max(0, Math.min(...this.#retryAts) - this.#config.clock.now())
    const fields = { ...counts, failedKeys: failures.keys, error: failures.firstError, retryInMs, rejected }
    if (counts.rejectedUnits > 0 || counts.possiblyLostUnits > 0) {
      log.error(
        `reporting usage: ${failures.keys} of ${counts.reports + failures.keys} reports failed; ` +
          `${counts.rejectedUnits} units refused by Planship and dropped, ` +
          `${counts.possiblyLostUnits} possibly lost (at most once), ${counts.retainedUnits} pending for a retry`,
        fields,
      )
    } else {
      log.warn(
        `reporting usage: ${failures.keys} of ${counts.reports + failures.keys} reports failed; ` +
          `${counts.retainedUnits} units stay pending and are retried`,
        fields,
      )
    }
  }

  async #deliver(report: PendingReport, result: FlushResult, failures: PassFailures): Promise<void> {
    const { store, client, clock, log } = this.#config
    const stats = this.#stats
    report.sentAt = clock.now()
    try {
      await client.reportUsage(report.customerId, report.meteringId, report.usage, report.bucket)
    } catch (error) {
      if (!answeredOk(error)) {
        failures.keys++
        failures.firstError ??= describe(error)
        return this.#failed(report, error, result)
      }
      // A 2xx whose body is not a MeteringRecord: Planship applied the usage all the same.
      log.throttled('warn', 'odd-ack', 'Planship acknowledged a usage report with an unexpected body')
    }
    await store.acknowledge(report, clock.now())
    result.reports++
    result.units += report.usage
    stats.reports++
    stats.reportedUnits += report.usage
  }

  async #failed(report: PendingReport, error: unknown, result: FlushResult): Promise<void> {
    const { store, clock, delivery } = this.#config
    const stats = this.#stats
    const fields = { ...report, error: describe(error) }
    if (!isRetriable(error)) {
      await store.discard(report, 'rejected')
      result.rejectedUnits += report.usage
      result.rejected.push(report)
      stats.rejectedUnits += report.usage
      this.#config.emit?.({ type: 'drop', report, reason: 'rejected', error: fields.error })
      return
    }
    if (mayHaveBeenApplied(error)) {
      if (delivery === 'at-most-once') {
        await store.discard(report, 'possibly-lost')
        result.possiblyLostUnits += report.usage
        stats.possiblyLostUnits += report.usage
        this.#config.emit?.({ type: 'drop', report, reason: 'possibly-lost', error: fields.error })
        return
      }
      stats.possiblyDuplicatedUnits += report.usage
    }
    // Planship's Retry-After when it gave one, else exponential backoff with full jitter.
    const retryAfterMs = error instanceof PlanshipMeterError ? error.retryAfterMs : undefined
    const retryAt = clock.now() + (retryAfterMs ?? fullJitterMs(report.failures + 1))
    await store.restore(report, retryAt, mayHaveBeenApplied(error))
    result.retainedUnits += report.usage
    stats.retries++
    this.#retryAts.push(retryAt)
    this.#config.emit?.({ type: 'retry', report, error: fields.error, retryAt })
  }

  /** Delivery totals since the meter started. */
  stats(): DeliveryStats {
    return { ...this.#stats }
  }
}

/** Failed reports of one pass, summed up for its one log line. */
interface PassFailures {
  keys: number
  firstError: string | undefined
}

/** A report call that failed only because the 2xx answer could not be read as a record. */
function answeredOk(error: unknown): boolean {
  return (
    error instanceof PlanshipMeterError &&
    error.code === 'PLANSHIP_BAD_RESPONSE' &&
    (error.status ?? 0) >= 200 &&
    (error.status ?? 0) < 300
  )
}
