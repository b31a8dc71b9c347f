import { ROUTE_NAMES, type RouteName } from './counters.js'

/** What a {@link FaultRule} does to a request it fires on. */
export type FaultKind = 'error' | 'rate-limit' | 'latency' | 'hang' | 'reset' | 'apply-then-fail'

/** Statuses an `error` or `apply-then-fail` rule answers with. */
export type FaultStatus = 500 | 502 | 503

/** How an `apply-then-fail` rule fails once the request was applied. */
export type ApplyThenFailMode = 'status' | 'reset' | 'hang'

/**
 * One fault-injection rule. Every rule matching a request's route draws one number from the
 * seeded PRNG, in rule order; `latency` rules that fire add up, and the first other rule that
 * fires decides what happens to the request.
 */
export interface FaultRule {
  /** API route (a request counter name, e.g. `'reportUsage'`), or `'*'` for every API route. */
  route: RouteName | '*'
  /**
   * - `error`: answers `status` with `{"detail": …}`, without running the route;
   * - `rate-limit`: answers 429 with `Retry-After: retryAfterS`;
   * - `latency`: delays the request by `latencyMs` (on top of the emulator's global latency);
   * - `hang`: never answers, until the client gives up or the emulator closes;
   * - `reset`: destroys the connection (TCP RST) without an answer;
   * - `apply-then-fail`: runs the route (e.g. records the usage), then fails as `mode` says.
   *   When the route itself fails (bad token, bad body), that answer goes out unchanged.
   */
  kind: FaultKind
  /** Probability that the rule fires on a matching request, from 0 to 1. Defaults to `1`. */
  rate?: number
  /** Status of `error` and of `apply-then-fail` in mode `'status'`. Defaults to `503`. */
  status?: FaultStatus
  /** `Retry-After` of `rate-limit`, in whole seconds. Defaults to `1`. */
  retryAfterS?: number
  /** Delay added by `latency`, in ms. Required for `latency`. */
  latencyMs?: number
  /** How `apply-then-fail` fails: a `status` answer, a connection `reset`, or a `hang`. Defaults to `'status'`. */
  mode?: ApplyThenFailMode
}

/**
 * Fault injection of the emulator. Fields left out keep their current value (`setFaults`,
 * `PUT /_emulator/faults`); `rules` replaces the whole list.
 */
export interface FaultConfig {
  /** Seed of the PRNG behind every `rate`; giving it restarts the sequence. Defaults to `1`. */
  seed?: number
  /** The rules, in evaluation order. Defaults to none. */
  rules?: FaultRule[]
  /**
   * Planship is down: every API request's connection is reset (admin routes keep working, state and
   * port are kept). Defaults to `false`.
   */
  down?: boolean
  /** Same as `setAggregationLag(ms)`. Defaults to the emulator's `aggregationLagMs`. */
  aggregationLagMs?: number
  /** `true` revokes every token issued so far, once (same as `revokeTokens()`); not kept. Defaults to `false`. */
  revokeTokens?: boolean
}

/** A rule with its defaults filled in. */
export type ResolvedFaultRule = FaultRule & { rate: number }

/** A validated {@link FaultConfig}. */
export interface ParsedFaultConfig {
  seed?: number
  rules?: ResolvedFaultRule[]
  down?: boolean
  aggregationLagMs?: number
  revokeTokens?: boolean
}

/** A problem with fault input: where (`path`, in the input's own key names) and what. */
export class FaultInputError extends Error {
  constructor(
    readonly path: Array<string | number>,
    readonly problem: string,
    readonly type: string,
  ) {
    super(`${formatPath(path)} ${problem}`)
    this.name = 'FaultInputError'
  }

  /** The problem as a message naming the field under `root`, e.g. `faults.rules[0].rate must be …`. */
  describe(root: string): string {
    return `${formatPath([root, ...this.path])} ${this.problem}`
  }
}

/** `['rules', 0, 'rate']` → `rules[0].rate`. */
export function formatPath(path: Array<string | number>): string {
  return path.map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? part : `.${part}`)).join('')
}

/** Key names: camelCase for the programmatic API, snake_case on the admin route. */
export type Naming = 'camel' | 'snake'

const SNAKE: Record<string, string> = {
  retryAfterS: 'retry_after_s',
  latencyMs: 'latency_ms',
  aggregationLagMs: 'aggregation_lag_ms',
  revokeTokens: 'revoke_tokens',
}
const KINDS: readonly FaultKind[] = ['error', 'rate-limit', 'latency', 'hang', 'reset', 'apply-then-fail']
const STATUSES: readonly number[] = [500, 502, 503]
const MODES: readonly ApplyThenFailMode[] = ['status', 'reset', 'hang']
const ROUTES: readonly string[] = ['*', ...ROUTE_NAMES]
const CONFIG_KEYS = ['seed', 'rules', 'down', 'aggregationLagMs', 'revokeTokens']
const RULE_KEYS = ['route', 'kind', 'rate', 'status', 'retryAfterS', 'latencyMs', 'mode']

/** Validates fault input; throws a {@link FaultInputError} on the first problem. */
export function parseFaultConfig(input: unknown, naming: Naming): ParsedFaultConfig {
  const name = (key: string): string => (naming === 'snake' ? (SNAKE[key] ?? key) : key)
  const body = object(input, [])
  rejectExtra(body, CONFIG_KEYS.map(name), [])
  const result: ParsedFaultConfig = {}
  const seed = body[name('seed')]
  if (seed !== undefined) {
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
      throw new FaultInputError(['seed'], 'must be an integer', 'type_error.integer')
    }
    result.seed = seed
  }
  const down = body[name('down')]
  if (down !== undefined) result.down = boolean(down, ['down'])
  const revokeTokens = body[name('revokeTokens')]
  if (revokeTokens !== undefined) result.revokeTokens = boolean(revokeTokens, [name('revokeTokens')])
  const lag = body[name('aggregationLagMs')]
  if (lag !== undefined) result.aggregationLagMs = duration(lag, [name('aggregationLagMs')])
  const rules = body[name('rules')]
  if (rules !== undefined) {
    if (!Array.isArray(rules)) throw new FaultInputError(['rules'], 'must be a list', 'type_error.list')
    result.rules = rules.map((rule, index) => parseRule(rule, ['rules', index], name))
  }
  return result
}

function parseRule(input: unknown, at: Array<string | number>, name: (key: string) => string): ResolvedFaultRule {
  const body = object(input, at)
  rejectExtra(body, RULE_KEYS.map(name), at)
  const route = body.route
  if (typeof route !== 'string' || !ROUTES.includes(route)) {
    throw new FaultInputError(
      [...at, 'route'],
      `must be '*' or a route name (${ROUTE_NAMES.join(', ')})`,
      'type_error.enum',
    )
  }
  const kind = body.kind
  if (typeof kind !== 'string' || !(KINDS as readonly string[]).includes(kind)) {
    throw new FaultInputError([...at, 'kind'], `must be one of ${KINDS.join(', ')}`, 'type_error.enum')
  }
  const rate = body.rate ?? 1
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate < 0 || rate > 1) {
    throw new FaultInputError([...at, 'rate'], 'must be a number from 0 to 1', 'value_error.number.not_in_range')
  }
  const rule = { route, kind, rate } as ResolvedFaultRule

  // Each setting belongs to some kinds only: one given elsewhere is a mistake worth reporting.
  const mode = body.mode ?? (kind === 'apply-then-fail' ? 'status' : undefined)
  const allowed = {
    status: kind === 'error' || (kind === 'apply-then-fail' && mode === 'status'),
    retryAfterS: kind === 'rate-limit',
    latencyMs: kind === 'latency',
    mode: kind === 'apply-then-fail',
  }
  for (const [key, ok] of Object.entries(allowed)) {
    if (!ok && body[name(key)] !== undefined) {
      const where = key === 'status' ? "kind 'error' or 'apply-then-fail' with mode 'status'" : `kind '${kindOf(key)}'`
      throw new FaultInputError([...at, name(key)], `applies only to ${where}`, 'value_error.extra')
    }
  }
  if (allowed.mode) {
    if (typeof mode !== 'string' || !(MODES as readonly string[]).includes(mode)) {
      throw new FaultInputError([...at, 'mode'], `must be one of ${MODES.join(', ')}`, 'type_error.enum')
    }
    rule.mode = mode as ApplyThenFailMode
  }
  if (allowed.status) {
    const status = body.status ?? 503
    if (typeof status !== 'number' || !STATUSES.includes(status)) {
      throw new FaultInputError([...at, 'status'], `must be one of ${STATUSES.join(', ')}`, 'type_error.enum')
    }
    rule.status = status as FaultStatus
  }
  if (allowed.retryAfterS) {
    const retryAfterS = body[name('retryAfterS')] ?? 1
    if (typeof retryAfterS !== 'number' || !Number.isSafeInteger(retryAfterS) || retryAfterS < 0) {
      throw new FaultInputError(
        [...at, name('retryAfterS')],
        'must be a whole number of seconds >= 0',
        'value_error.number.not_ge',
      )
    }
    rule.retryAfterS = retryAfterS
  }
  if (allowed.latencyMs) {
    const latencyMs = body[name('latencyMs')]
    if (latencyMs === undefined) {
      throw new FaultInputError([...at, name('latencyMs')], "is required for kind 'latency'", 'value_error.missing')
    }
    rule.latencyMs = duration(latencyMs, [...at, name('latencyMs')])
  }
  return rule
}

function kindOf(key: string): FaultKind {
  return key === 'retryAfterS' ? 'rate-limit' : key === 'latencyMs' ? 'latency' : 'apply-then-fail'
}

function object(value: unknown, at: Array<string | number>): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FaultInputError(at, 'must be an object', 'type_error.dict')
  }
  return value as Record<string, unknown>
}

function rejectExtra(body: Record<string, unknown>, keys: string[], at: Array<string | number>): void {
  for (const key of Object.keys(body)) {
    if (!keys.includes(key)) {
      throw new FaultInputError([...at, key], `is not a setting (expected ${keys.join(', ')})`, 'value_error.extra')
    }
  }
}

function boolean(value: unknown, at: Array<string | number>): boolean {
  if (typeof value !== 'boolean') throw new FaultInputError(at, 'must be a boolean', 'type_error.bool')
  return value
}

function duration(value: unknown, at: Array<string | number>): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new FaultInputError(at, 'must be a finite number of ms >= 0', 'value_error.number.not_ge')
  }
  return value
}

/** A rule as the admin route shows it (snake_case keys). */
export function ruleWire(rule: ResolvedFaultRule): Record<string, unknown> {
  return Object.fromEntries(Object.entries(rule).map(([key, value]) => [SNAKE[key] ?? key, value]))
}
