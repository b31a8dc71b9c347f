import assert from 'node:assert/strict'
import express from 'express'
import { createMeter as createExpressMeter } from '../../src/express/index.js'
import { createMeter, type MeterCore } from '../../src/index.js'
import { RedisUsageStore } from '../../src/redis/index.js'
import { startHarness } from '../helpers/harness.js'
import { listen, readStream, tokensFixture } from '../helpers/streams.js'
import { connected, redisClient, uniquePrefix } from './support.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A long job: holds 10 units, extends by 10 while it can, then bills what it did. */
async function longJob(meter: MeterCore, customerId: string): Promise<number> {
  const job = await meter.reserve(customerId, 'tokens', { cost: 10 })
  if (!job.allowed) return 0
  let done = 0
  do done += 10
  while (done < 1_000 && (await job.extend(10)))
  await job.commit(done)
  return done
}

describe('streamed work on the Redis store: one quota across replicas', function () {
  this.timeout(20_000)

  for (const leaseUnits of [0, 16])
    it(`three replicas, three long jobs each, extend until refused: exactly 100 of 100 billed (leaseUnits ${leaseUnits})`, async () => {
      const client = await connected(redisClient())
      const h = await startHarness({ emulator: { fixture: tokensFixture } })
      try {
        h.emu.createCustomer('jobs', 'basic')
        const keyPrefix = uniquePrefix('streams')
        const meters = [0, 1, 2].map(() =>
          createMeter({
            ...h.options,
            store: new RedisUsageStore({ client, keyPrefix, leaseUnits, commandTimeoutMs: 1_000 }),
          }),
        )
        const done = await Promise.all(meters.flatMap((meter) => [0, 1, 2].map(() => longJob(meter, 'jobs'))))
        assert.equal(
          done.reduce((sum, units) => sum + units, 0),
          100,
        )
        for (const meter of meters) await meter.close()
        assert.equal(h.emu.recordedUsage({ customerId: 'jobs', meteringId: 'tokens' }), 100)
      } finally {
        await h.close()
        client.disconnect()
      }
    })

  it('an Express stream holding 90 of 100 for longer than reservationTtlMs keeps them: a concurrent 20 is refused', async () => {
    const client = await connected(redisClient())
    const h = await startHarness({ emulator: { fixture: tokensFixture } })
    const keyPrefix = uniquePrefix('longstream')
    const store = () => new RedisUsageStore({ client, keyPrefix, reservationTtlMs: 1_000, commandTimeoutMs: 1_000 })
    const { productSlug, planship, logger, reporting } = h.options
    const streaming = createExpressMeter({
      productSlug,
      planship,
      logger,
      reporting,
      identify: (req) => req.get('x-customer-id') || undefined,
      store: store(),
    })
    const other = createMeter({ ...h.options, store: store() })
    const app = express()
    app.get('/stream', streaming.consume('tokens', { cost: 90 }), async (_req, res) => {
      res.type('text/event-stream')
      for (let i = 0; i < 25; i++) {
        res.write(`data: {"chunk":${i}}\n\n`)
        await sleep(100) // 2.5 s in all, past the 1 s TTL
      }
      res.end()
    })
    const server = await listen(app)
    try {
      h.emu.createCustomer('long', 'basic')
      const reading = readStream(server, '/stream', 'long')
      await sleep(1_800)
      const concurrent = await other.reserve('long', 'tokens', { cost: 20 })
      assert.equal(concurrent.allowed, false, 'the stream still holds its 90 units')
      const read = await reading
      assert.equal(read.chunks, 25)
      const after = await other.reserve('long', 'tokens', { cost: 10 })
      assert.ok(after.allowed, 'the 10 left once the stream is billed its 90')
      await after.release()
      await streaming.close()
      await other.close()
      assert.equal(h.emu.recordedUsage({ customerId: 'long', meteringId: 'tokens' }), 90)
    } finally {
      server.close()
      await h.close()
      client.disconnect()
    }
  })
})
