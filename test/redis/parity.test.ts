import assert from 'node:assert/strict'
import type { Redis } from 'ioredis'
import {
  type LeverLimit,
  MemoryUsageStore,
  type PendingReport,
  type Reservation,
  type ReserveResult,
} from '../../src/index.js'
import type { RedisUsageStore } from '../../src/redis/index.js'
import { manualClock } from '../helpers/harness.js'
import { boundStore, connected, redisClient, uniquePrefix } from './support.js'

/** A small deterministic PRNG (mulberry32): the same run every time, and a seed to replay a failure. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const CALLS = 40
const EXPORTS_PER_BUCKET = 6
const LAG_MS = 2_000

/** Planship in miniature: acknowledged units become visible in `remaining` after a random lag. */
class Planship {
  readonly applied: { meteringId: string; bucket: string | undefined; units: number; visibleAt: number }[] = []
  remaining(lever: 'calls' | 'exports', bucket: string | undefined, at: number): number {
    let used = 0
    for (const a of this.applied) {
      if (a.visibleAt > at) continue
      if (lever === 'calls' && (a.meteringId === 'call' || a.meteringId === 'batch')) used += a.units
      if (lever === 'exports' && a.meteringId === 'export' && a.bucket === bucket) used += a.units
    }
    return (lever === 'calls' ? CALLS : EXPORTS_PER_BUCKET) - used
  }
}

const byKey = (a: PendingReport, b: PendingReport) =>
  `${a.meteringId}/${a.bucket}`.localeCompare(`${b.meteringId}/${b.bucket}`)

describe('RedisUsageStore decides as MemoryUsageStore does', function () {
  this.timeout(30_000)
  let client: Redis

  before(async () => {
    client = await connected(redisClient())
  })
  after(() => client.quit())

  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`gives the same answer to every call of a random run with reconciliation (seed ${seed})`, async () => {
      const next = random(seed)
      const clock = manualClock()
      const memory = new MemoryUsageStore({
        aggregationLagMs: LAG_MS,
        maxSnapshotAgeMs: 60_000,
        maxCustomers: 1_000,
        maxPendingKeys: 1_000,
        clock,
      })
      const { store: redis, logger } = boundStore(
        { client, keyPrefix: uniquePrefix(`parity${seed}`) },
        { clock, aggregationLagMs: LAG_MS },
      )
      const planship = new Planship()
      let snapshot = { fetchedAt: clock.now(), receivedAt: clock.now() }
      const open: [Reservation, Reservation][] = []
      const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!
      let admitted = 0
      let extended = 0
      let refusedExtensions = 0
      /** A request of `cost` units under the key, against the lever it feeds, from the current snapshot. */
      const requestFor = (meteringId: string, bucket: string | undefined, cost: number) => {
        const lever = meteringId === 'export' ? 'exports' : 'calls'
        const limit: LeverLimit = {
          lever,
          remaining: planship.remaining(lever, lever === 'exports' ? bucket : undefined, snapshot.fetchedAt),
          meteringIds: lever === 'calls' ? ['call', 'batch'] : ['export'],
          perBucket: lever === 'exports',
        }
        const limits = [limit]
        const { fetchedAt: snapshotAt, receivedAt } = snapshot
        return { customerId: 'parity-customer', meteringId, bucket, cost, limits, snapshotAt, receivedAt }
      }
      const shape = (x: ReserveResult) => (x.ok ? 'ok' : JSON.stringify(x))

      for (let step = 0; step < 400; step++) {
        const roll = next()
        if (roll < 0.3) {
          const request = requestFor(
            pick(['call', 'batch', 'export']),
            pick([undefined, 'p1', 'p2']),
            1 + Math.floor(next() * 3),
          )
          const m = memory.reserve(request)
          const r = await redis.reserve(request)
          assert.equal(shape(r), shape(m), `step ${step}: reserve ${JSON.stringify(request)}`)
          if (m.ok && r.ok) {
            open.push([m.reservation, r.reservation])
            admitted++
          }
        } else if (roll < 0.4 && open.length > 0) {
          // A stream going on: more units on a running reservation, from the snapshot of now.
          const [m, r] = pick(open)
          const request = requestFor(m.meteringId, m.bucket, 1 + Math.floor(next() * 3))
          const mx = memory.extend(m, request)
          const rx = await redis.extend(r, request)
          assert.equal(shape(rx), shape(mx), `step ${step}: extend ${JSON.stringify(request)}`)
          assert.equal(r.cost, m.cost, `step ${step}: the reservation's cost after extend`)
          if (mx.ok) extended++
          else refusedExtensions++
        } else if (roll < 0.57 && open.length > 0) {
          const [m, r] = open.splice(Math.floor(next() * open.length), 1)[0]!
          if (next() < 0.2) {
            memory.release(m)
            await redis.release(r)
          } else {
            const usage = Math.floor(next() * (m.cost + 1))
            memory.commit(m, usage)
            await redis.commit(r, usage)
          }
        } else if (roll < 0.69) {
          const m = memory.takePending(clock.now()).sort(byKey)
          const r = (await redis.takePending(clock.now())).sort(byKey)
          const strip = (reports: PendingReport[]) =>
            reports.map(({ meteringId, bucket, usage, failures }) => ({ meteringId, bucket, usage, failures }))
          assert.deepEqual(strip(r), strip(m), `step ${step}: takePending`)
          for (let i = 0; i < m.length; i++) {
            const sentAt = clock.now()
            m[i]!.sentAt = sentAt
            r[i]!.sentAt = sentAt
            if (next() < 0.8) {
              const { meteringId, bucket, usage } = m[i]!
              planship.applied.push({
                meteringId,
                bucket,
                units: usage,
                visibleAt: sentAt + Math.floor(next() * LAG_MS),
              })
              memory.acknowledge(m[i]!, clock.now())
              await redis.acknowledge(r[i]!, clock.now())
            } else {
              memory.restore(m[i]!, clock.now() + 100)
              await redis.restore(r[i]!, clock.now() + 100)
            }
          }
        } else if (roll < 0.83) {
          snapshot = { fetchedAt: clock.now(), receivedAt: clock.now() + Math.floor(next() * 50) }
          clock.advance(snapshot.receivedAt - snapshot.fetchedAt)
        } else {
          clock.advance(Math.floor(next() * 800))
        }
        assert.equal(await redis.pendingUnits(), 0, logger.lines.join('\n'))
      }
      assert.ok(admitted > 20, `the run admitted ${admitted}`)
      assert.ok(extended > 5 && refusedExtensions > 0, `extended ${extended} times, refused ${refusedExtensions}`)
      assert.equal((redis as RedisUsageStore).mode, 'shared')
      redis.close()
    })
  }
})
