import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type Server } from 'node:net'

/** Runs a demo server script with `env` until it exits on its own: its exit code and output. */
function runDemo(script: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', script],
      { env: { ...process.env, PLANSHIP_CLIENT_ID: '', PLANSHIP_CLIENT_SECRET: '', ...env }, timeout: 30_000 },
      (_error, stdout, stderr) => resolve({ code: child.exitCode, output: stdout + stderr }),
    )
  })
}

/** `npm start` on a port another process holds: one line naming the port and how to choose another. */
describe('the demo servers on a port that is taken', function () {
  this.timeout(40_000)
  let taken: Server
  let port: number
  before(async () => {
    taken = createServer().listen(0, '127.0.0.1')
    await once(taken, 'listening')
    port = (taken.address() as { port: number }).port
  })
  after(() => taken.close())

  for (const [script, command] of [
    ['examples/koa-api/server.ts', 'npm start'],
    ['examples/express-api/server.ts', 'npx tsx examples/express-api/server.ts'],
  ] as const) {
    it(`${script} says which port is in use and how to choose another, and exits with 1`, async () => {
      const { code, output } = await runDemo(script, { PORT: String(port) })
      assert.equal(code, 1)
      assert.equal(
        output,
        `Port ${port} is in use on 127.0.0.1 (PORT): another process listens there; ` +
          `choose another with PORT, e.g. PORT=${port + 1} ${command} (PORT=0 picks a free one)\n`,
      )
    })
  }

  it("says so for the embedded emulator's port too, and for a PORT that is no port", async () => {
    const emulator = await runDemo('examples/koa-api/server.ts', { PORT: '0', EMULATOR_PORT: String(port) })
    assert.equal(emulator.code, 1)
    assert.match(emulator.output, new RegExp(`^Port ${port} is in use on 127\\.0\\.0\\.1 \\(EMULATOR_PORT\\)`))
    const invalid = await runDemo('examples/koa-api/server.ts', { PORT: '30OO' })
    assert.equal(invalid.code, 1)
    assert.equal(
      invalid.output,
      'PORT=30OO is not a port number (0 to 65535; 0 picks a free one): e.g. PORT=3000 npm start\n',
    )
  })
})
