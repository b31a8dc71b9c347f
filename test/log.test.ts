import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import request from 'supertest'
import { createMeter } from '../src/index.js'
import { appWith, type Harness, startHarness } from './helpers/harness.js'

/** A real pino logger writing JSON lines into an array. */
function pinoInto(lines: Array<Record<string, unknown>>) {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>)
      done()
    },
  })
  return pino({ level: 'debug' }, sink)
}

describe('loggers people use', () => {
  let h: Harness
  beforeEach(async () => {
    h = await startHarness()
  })
  afterEach(() => h.close())

  it('a pino logger gets (fields, message): the message and every field arrive', async () => {
    const lines: Array<Record<string, unknown>> = []
    const meter = createMeter({ ...h.options, logger: pinoInto(lines), failMode: 'open' })
    const koa = appWith(meter.consume('api-call'))
    h.emu.setDown(true)
    await request(koa.callback()).post('/').set('x-customer-id', 'pro-customer').expect(200)
    h.emu.setDown(false)
    await meter.close()
    const failing = lines.find((line) => line['msg'] === 'no usable Planship data; failing open')
    assert.ok(failing, JSON.stringify(lines))
    assert.equal(failing['level'], 40)
    assert.match(String(failing['error']), /PLANSHIP_UNREACHABLE/)
  })

  it('loggerStyle overrides the detection, and message-first loggers keep their order', async () => {
    const calls: unknown[][] = []
    const keep = (...args: unknown[]) => calls.push(args)
    const meter = createMeter({
      ...h.options,
      logger: { warn: keep, error: keep },
      loggerStyle: 'fields-first',
      productSlug: 'nope',
      failMode: 'open',
    })
    const koa = appWith(meter.consume('api-call'))
    await request(koa.callback()).post('/').set('x-customer-id', 'pro-customer').expect(200)
    await meter.close()
    assert.ok(calls.length > 0)
    for (const [fields, message] of calls) {
      assert.equal(typeof fields, 'object')
      assert.equal(typeof message, 'string')
    }
    assert.throws(() => createMeter({ ...h.options, loggerStyle: 'pino' as 'fields-first' }), /loggerStyle/)
  })
})
