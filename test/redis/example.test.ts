import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

describe('examples/replicas', () => {
  it('three replicas share one quota: exactly 100 of 150 admitted, and Planship records 100', async function () {
    this.timeout(30_000)
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'examples/replicas/main.ts'], {
      timeout: 25_000,
      // Three replicas, the emulator and Redis on a loaded 2-core test machine sometimes miss
      // 50 ms; a miss means local decisions, which the example is not about.
      env: { ...process.env, REDIS_COMMAND_TIMEOUT_MS: '1000' },
    })
    assert.match(stdout, /admitted 100 \(per replica: \d+ \+ \d+ \+ \d+\), denied 50 with 429/)
    assert.match(stdout, /Planship recorded 100 api-calls/)
  })
})
