import type { DurationUnit } from './fixture.js'

const FIXED_UNIT_MS: Partial<Record<DurationUnit, number>> = {
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
  week: 604_800_000,
}

/**
 * `start` moved forward by `count` units, or `null` for perpetual plans. Months and years follow the
 * calendar in UTC and clamp the day (Jan 31 + 1 month = Feb 28/29), as billing periods do.
 */
export function addDuration(start: number, count: number, unit: DurationUnit): number | null {
  if (unit === 'perpetual') return null
  const fixed = FIXED_UNIT_MS[unit]
  if (fixed !== undefined) return start + count * fixed
  const months = unit === 'year' ? count * 12 : count
  const date = new Date(start)
  const targetMonth = date.getUTCMonth() + months
  const lastDay = new Date(Date.UTC(date.getUTCFullYear(), targetMonth + 1, 0)).getUTCDate()
  return Date.UTC(
    date.getUTCFullYear(),
    targetMonth,
    Math.min(date.getUTCDate(), lastDay),
    date.getUTCHours(),
    date.getUTCMinutes(),
    date.getUTCSeconds(),
    date.getUTCMilliseconds(),
  )
}

/** Emulator time: an injectable base clock plus an offset that `advance()` moves forward. */
export class EmulatorClock {
  private offsetMs = 0

  constructor(private readonly base: { now(): number }) {}

  now(): number {
    return this.base.now() + this.offsetMs
  }

  advance(ms: number): void {
    this.offsetMs += ms
  }

  reset(): void {
    this.offsetMs = 0
  }
}
