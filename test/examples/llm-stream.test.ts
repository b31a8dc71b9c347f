import assert from 'node:assert/strict'
import { createCompletionsApp as expressApp } from '../../examples/llm-stream/express.js'
import { createCompletionsApp as koaApp } from '../../examples/llm-stream/koa.js'
import { llmFixture } from '../../examples/llm-stream/model.js'
import { type Emulator, startEmulator } from '../../src/emulator/index.js'
import type { MeterCore } from '../../src/index.js'
import { until } from '../helpers/harness.js'
import { listen, readStream } from '../helpers/streams.js'

const apps = { koa: koaApp, express: expressApp }

for (const [name, createApp] of Object.entries(apps))
  describe(`examples/llm-stream on ${name}`, () => {
    let emu: Emulator
    let meter: MeterCore
    let server: Awaited<ReturnType<typeof listen>>
    beforeEach(async () => {
      emu = await startEmulator({ fixture: llmFixture })
      const created = createApp({
        productSlug: emu.productSlug,
        planship: { baseUrl: emu.url, clientId: emu.clientId, clientSecret: emu.clientSecret },
        reporting: { flushIntervalMs: 3_600_000 },
        logger: {},
      })
      meter = created.meter
      server = await listen(created.app)
    })
    afterEach(async () => {
      server.closeAllConnections()
      server.close()
      await meter.close()
      await emu.close()
    })
    const tokens = async (customerId: string) => {
      await meter.flush()
      return emu.recordedUsage({ customerId, meteringId: 'tokens' })
    }

    it('streams a completion and bills its tokens; the next one stops at the quota with quota_exceeded; then 429', async () => {
      const first = await readStream(server, '/v1/completions?max_tokens=50&delay_ms=0', 'free-customer')
      assert.equal(first.chunks, 50)
      assert.match(first.body, /event: done\ndata: \{"tokens":50\}/)
      assert.equal(await tokens('free-customer'), 50)

      const second = await readStream(server, '/v1/completions?max_tokens=500&delay_ms=0', 'free-customer')
      assert.equal(second.chunks, 150, 'the 150 tokens the free plan had left')
      assert.ok(second.quotaExceeded)
      assert.equal(await tokens('free-customer'), 200)

      const third = await readStream(server, '/v1/completions?max_tokens=5', 'free-customer')
      assert.equal(third.status, 429)
    })

    it('bills a client that leaves mid-completion the tokens it was sent', async () => {
      const read = await readStream(server, '/v1/completions?max_tokens=500&delay_ms=10', 'pro-customer', 30)
      assert.equal(read.chunks, 30)
      // Billed once the server has seen the client go: poll, a loaded machine may take a while.
      let billed = 0
      await until(async () => (billed = await tokens('pro-customer')) >= 30)
      assert.ok(billed >= 30 && billed <= 32, `billed ${billed} for 30 delivered`)
    })
  })
