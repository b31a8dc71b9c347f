/** Throws the `TypeError` every invalid option gets: it names the option and what it must be. */
export function invalidOption(scope: string, option: string, expected: string): never {
  throw new TypeError(`${scope}: option \`${option}\` must be ${expected}`)
}

/** A whole-number option: `fallback` when absent, else at least `min`. */
export function integerOption(
  scope: string,
  value: number | undefined,
  option: string,
  fallback: number,
  min: 0 | 1,
): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < min) {
    invalidOption(scope, option, min === 1 ? 'a positive integer' : 'a non-negative integer')
  }
  return value
}
