/**
 * Mocha root hooks (`require` in .mocharc.json), for every run however it was started. When the
 * run has Redis tests, they get a Redis before anything runs (see `findRedis`): without one,
 * they would each time out and flood the output with ioredis connection errors. When none can
 * be had, the run says so once, in one line, in place of the Redis tests; the others still run.
 */
import { readFileSync } from 'node:fs'
import { sep } from 'node:path'
import Mocha from 'mocha'
import { findRedis, useRedis } from '../redis/support.js'

let ownRedis: { close(): Promise<void> } | undefined

/** The Redis tests: those under test/redis/ and those using its support module. */
function needsRedis(file: string | undefined): boolean {
  if (file === undefined) return false
  return file.includes(`${sep}test${sep}redis${sep}`) || readFileSync(file, 'utf8').includes('/redis/support.js')
}

const files = (count: number) => `${count} ${count === 1 ? 'file' : 'files'}`

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    const root = this.test?.parent
    if (root === undefined) return
    const redisSuites = root.suites.filter((suite) => needsRedis(suite.file))
    if (redisSuites.length === 0) return
    try {
      const redis = await findRedis()
      useRedis(redis.url)
      ownRedis = redis
    } catch (error) {
      // Suites are read after the root's before-all hooks: these are not run, this test says why.
      root.suites = root.suites.filter((suite) => !redisSuites.includes(suite))
      root.addTest(
        new Mocha.Test(`the Redis tests (${files(redisSuites.length)}) need a Redis`, () => {
          throw error
        }),
      )
    }
  },
  async afterAll() {
    await ownRedis?.close()
  },
}
