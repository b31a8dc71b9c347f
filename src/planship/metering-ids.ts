/**
 * What to tell a user whose metering id feeds no lever: most often a typo, or the lever's slug
 * given where its metering id belongs (`api-calls` for `api-call`).
 */

/** Metering ids listed at most in a hint, when none is close to the one given. */
const MAX_LISTED = 10

/** Levenshtein distance, case-insensitive: ids are short and this runs once per unknown id. */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase()
  const y = b.toLowerCase()
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j)
  for (let i = 1; i <= x.length; i++) {
    const current = [i]
    for (let j = 1; j <= y.length; j++) {
      const substitution = previous[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1)
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution))
    }
    previous = current
  }
  return previous[y.length]!
}

/** The known id nearest `unknown`, when it is near enough to be a typo of it (a third of its length). */
export function closestMeteringId(unknown: string, known: Iterable<string>): string | undefined {
  const reach = Math.max(2, Math.floor(unknown.length / 3))
  let best: { id: string; distance: number } | undefined
  for (const id of known) {
    const distance = editDistance(unknown, id)
    if (distance <= reach && (best === undefined || distance < best.distance)) best = { id, distance }
  }
  return best?.id
}

const quoted = (ids: readonly string[]) => ids.map((id) => JSON.stringify(id)).join(', ')

/**
 * One or two sentences naming the metering id meant: the one feeding a lever whose slug was
 * given, else the closest one, else those the product has. `catalog`: metering id → levers fed.
 */
export function meteringIdHint(unknown: string, catalog: ReadonlyMap<string, readonly string[]>): string {
  const feedingLever = [...catalog].filter(([, levers]) => levers.includes(unknown)).map(([id]) => id)
  if (feedingLever.length > 0) {
    const ids = feedingLever.length === 1 ? `id is ${quoted(feedingLever)}` : `ids are ${quoted(feedingLever)}`
    return `"${unknown}" is a lever's slug; its metering ${ids}.`
  }
  const closest = closestMeteringId(unknown, catalog.keys())
  if (closest !== undefined) return `Did you mean "${closest}" (it feeds ${catalog.get(closest)!.join(', ')})?`
  const ids = [...catalog.keys()]
  if (ids.length === 0) return 'The product has no metered lever.'
  const listed = quoted(ids.slice(0, MAX_LISTED)) + (ids.length > MAX_LISTED ? ', …' : '')
  return `The product's metering ids: ${listed}.`
}
