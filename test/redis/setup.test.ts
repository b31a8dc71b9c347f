import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { Redis } from 'ioredis'
import { findRedis, freePort, RedisMissing } from './support.js'

/** Runs mocha on `files` as a user would, in a child process: its exit code and output. */
function mocha(files: string[], env: Record<string, string>): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['node_modules/mocha/bin/mocha.js', ...files],
      { env: { ...process.env, ...env }, timeout: 60_000 },
      (error, stdout, stderr) =>
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, output: stdout + stderr }),
    )
  })
}

/** How the suite finds a Redis (test/helpers/root-hooks.ts): its own when none answers, else one line. */
describe('a Redis for the Redis tests', function () {
  this.timeout(60_000)

  it('without one at REDIS_URL, a run of a Redis test file fails once, in one line, and runs only that file', async () => {
    const dead = `redis://127.0.0.1:${await freePort()}`
    const { code, output } = await mocha(['test/redis/store.test.ts'], { REDIS_URL: dead })
    assert.notEqual(code, 0)
    const line = `RedisMissing: nothing answers at ${dead} (REDIS_URL): start Redis there, or unset REDIS_URL to let the tests start their own redis-server`
    assert.equal(output.split(line).length - 1, 1, output)
    assert.match(output, /0 passing.*\n\s*1 failing/)
    assert.doesNotMatch(output, /\[ioredis\]|Cannot read properties|Timeout of|\n\s+at /, output)
  })

  it("starts a redis-server of its own on a free port when the machine's does not answer, and stops it", async () => {
    const machine = `redis://127.0.0.1:${await freePort()}`
    const own = await findRedis({ given: undefined, machine })
    assert.notEqual(own.url, machine)
    const client = new Redis(own.url)
    assert.equal(await client.ping(), 'PONG')
    client.disconnect()
    await own.close()
    const gone = new Redis(own.url, { lazyConnect: true, retryStrategy: () => null })
    gone.on('error', () => {})
    await assert.rejects(gone.connect())
  })

  it('says in one line what is missing when redis-server cannot be run either', async () => {
    const machine = `redis://127.0.0.1:${await freePort()}`
    const error = await findRedis({ given: undefined, machine, binary: 'no-such-redis-server' }).catch(
      (e: unknown) => e,
    )
    assert.ok(error instanceof RedisMissing)
    assert.equal(
      error.message,
      `nothing answers at ${machine} and no-such-redis-server cannot be run (ENOENT): install Redis (apt-get install redis-server) or set REDIS_URL to a running one`,
    )
    assert.equal(error.stack, `RedisMissing: ${error.message}`)
  })

  it('uses the Redis that answers', async () => {
    const { url } = await findRedis()
    const client = new Redis(url)
    assert.equal(await client.ping(), 'PONG')
    client.disconnect()
  })
})
