import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { startEmulator } from '../../src/emulator/index.js'

const root = fileURLToPath(new URL('../../', import.meta.url))

describe('README', () => {
  it('the Quick start is a whole file that runs as pasted, against the emulator', async function () {
    this.timeout(20_000)
    const readme = await readFile(`${root}README.md`, 'utf8')
    const section = readme.slice(readme.indexOf('## Quick start'))
    const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1]
    assert.ok(code, 'the Quick start has a ts block')
    // The one change: the package name resolves to this checkout's source.
    const file = `${root}node_modules/.cache/planship-meter/quickstart.mts`
    await mkdir(`${root}node_modules/.cache/planship-meter`, { recursive: true })
    await writeFile(file, code.replace("from 'planship-meter'", `from '${root}src/index.ts'`))

    const emu = await startEmulator()
    const port = 20_000 + (process.pid % 20_000)
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      env: { ...process.env, PLANSHIP_BASE_URL: emu.url, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    const post = () =>
      fetch(`http://127.0.0.1:${port}/v1/renders`, { method: 'POST', headers: { 'x-customer-id': 'free-customer' } })
    let first: Response | undefined
    for (let tries = 0; first === undefined && tries < 200; tries++) {
      if (child.exitCode !== null) throw new Error(`the quick start exited:\n${output}`)
      first = await post().catch(() => undefined)
      if (first === undefined) await new Promise((resolve) => setTimeout(resolve, 50))
    }
    assert.equal(first?.status, 200, output)
    const csv = await fetch(`http://127.0.0.1:${port}/v1/export.csv`, { headers: { 'x-customer-id': 'free-customer' } })
    assert.equal(csv.status, 403)
    child.kill('SIGTERM')
    await once(child, 'exit')
    assert.equal(emu.recordedUsage({ customerId: 'free-customer', meteringId: 'api-call' }), 1, output)
    await emu.close()
  })
})
