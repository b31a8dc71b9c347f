import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { type Emulator, startEmulator } from '../../src/emulator/index.js'

/**
 * examples/nestjs in its own process: Nest's decorators need `experimentalDecorators`, which tsx
 * applies from tsconfig.test.json (the root tsconfig.json covers src/ only).
 */
describe('examples/nestjs', () => {
  let emu: Emulator
  let child: ChildProcess
  let url: string
  beforeEach(async function () {
    this.timeout(20_000)
    emu = await startEmulator()
    child = spawn(process.execPath, ['--import', 'tsx', 'examples/nestjs/server.ts'], {
      env: { ...process.env, TSX_TSCONFIG_PATH: 'tsconfig.test.json', PLANSHIP_BASE_URL: emu.url, PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    child.stdout!.setEncoding('utf8')
    url = await new Promise<string>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the Nest example exited with ${code}`)))
      child.stdout!.on('data', (chunk: string) => {
        out += chunk
        const found = /listening on (http:\/\/\S+)/.exec(out)
        if (found !== null) resolve(found[1]!.replace('[::1]', '127.0.0.1'))
      })
    })
  })
  afterEach(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      await once(child, 'exit')
    }
    await emu.close()
  })

  const get = (path: string, customer?: string) =>
    fetch(`${url}${path}`, { headers: customer === undefined ? {} : { 'x-api-key': customer } })

  it('meters a Nest route with the contract: 401, RateLimit headers, 429 with its body, usage flushed on shutdown', async function () {
    this.timeout(20_000)
    emu.createCustomer('nest-customer', 'free')
    assert.equal((await get('/v1/status')).status, 200)
    const unidentified = await get('/v1/widgets')
    assert.equal(unidentified.status, 401)
    assert.equal(((await unidentified.json()) as { error: { code: string } }).error.code, 'customer_unidentified')
    const first = await get('/v1/widgets', 'nest-customer')
    assert.equal(first.status, 200)
    assert.deepEqual(await first.json(), { widgets: ['one', 'two'] })
    assert.match(first.headers.get('ratelimit') ?? '', /^"api-calls";r=99/)
    assert.equal(first.headers.get('ratelimit-policy'), '"api-calls";q=100')
    for (let i = 0; i < 99; i++) assert.equal((await get('/v1/widgets', 'nest-customer')).status, 200)
    const denied = await get('/v1/widgets', 'nest-customer')
    assert.equal(denied.status, 429)
    assert.equal(((await denied.json()) as { error: { code: string; lever: string } }).error.code, 'quota_exceeded')
    assert.match(denied.headers.get('ratelimit') ?? '', /r=0/)
    // requireFeature through Nest middleware: the free plan has no csv-export, the pro plan has.
    assert.equal((await get('/v1/export.csv', 'nest-customer')).status, 403)
    assert.equal((await get('/v1/export.csv', 'pro-customer')).status, 200)
    // SIGTERM: Nest's shutdown hook closes the meter, which flushes the 100 admitted calls.
    child.kill('SIGTERM')
    await once(child, 'exit')
    assert.equal(emu.recordedUsage({ customerId: 'nest-customer', meteringId: 'api-call' }), 100)
  })
})
