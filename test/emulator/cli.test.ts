import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../', import.meta.url))

function startCli(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'src/emulator/cli.ts', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = startCli(args)
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, stdout, stderr }
}

describe('planship-emulator CLI', function () {
  // Each case starts a node process that compiles TypeScript on the fly.
  this.timeout(20_000)
  let child: ChildProcess | undefined

  afterEach(() => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    child = undefined
  })

  /** Starts the CLI and resolves once it has printed its banner, with everything printed so far. */
  async function started(args: string[]): Promise<{ url: string; output: () => { stdout: string; stderr: string } }> {
    child = startCli(args)
    let stdout = ''
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const url = await new Promise<string>((resolve, reject) => {
      child?.stdout?.on('data', (chunk: Buffer) => {
        stdout += chunk.toString()
        const match = /listening on (http:\/\/\S+)/.exec(stdout)
        if (match?.[1] !== undefined && stdout.includes('product:')) resolve(match[1])
      })
      child?.once('exit', (code) => reject(new Error(`CLI exited early with ${code}: ${stdout}${stderr}`)))
    })
    return { url, output: () => ({ stdout, stderr }) }
  }

  it('starts, prints the URL and credentials, serves the API and stops on SIGTERM', async () => {
    const { url, output } = await started(['--port', '0', '--latency-ms', '0'])
    const { stdout, stderr } = output()
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(stderr, '', 'no warning on loopback')
    assert.ok(stdout.includes(`console:       ${url}/`), stdout)
    assert.match(stdout, /client id: +demo-client-id/)
    assert.match(stdout, /client secret: +demo-client-secret/)
    assert.match(stdout, /product: +acme-api/)

    const health = await fetch(`${url}/api/v1/health`)
    assert.equal(health.status, 200)
    assert.deepEqual(await health.json(), {})

    const exited = once(child!, 'exit')
    child!.kill('SIGTERM')
    const [code] = (await exited) as [number | null]
    assert.equal(code, 0)
    assert.match(output().stdout, /stopped/)
  })

  it('prints the address it really listens on, and warns that admin routes are open when not on loopback', async () => {
    const { url, output } = await started(['--host', '0.0.0.0', '--port', '0'])
    const { stdout, stderr } = output()
    const port = /:(\d+)$/.exec(url)?.[1]
    assert.equal(url, `http://0.0.0.0:${port}`)
    // The URL a client on this machine uses, since 0.0.0.0 is not an address to connect to.
    assert.match(stdout, new RegExp(`base URL: +http://127\\.0\\.0\\.1:${port}\n`))
    assert.match(stderr, /warning: .*0\.0\.0\.0.*not on loopback.*no authentication/s)
    assert.equal((await fetch(`http://127.0.0.1:${port}/api/v1/health`)).status, 200)
  })

  it('prints the version of package.json for --version', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string
    }
    const { code, stdout, stderr } = await run(['--version'])
    assert.deepEqual({ code, stdout, stderr }, { code: 0, stdout: `${version}\n`, stderr: '' })
  })

  it('prints usage for --help', async () => {
    const { code, stdout } = await run(['--help'])
    assert.equal(code, 0)
    assert.match(stdout, /Usage: planship-emulator/)
    assert.match(stdout, /--aggregation-lag-ms/)
  })

  it('exits with 2 and a message on stderr for bad flags', async () => {
    for (const args of [['--bogus'], ['--port', 'abc'], ['--port', '70000'], ['--latency-ms', '-3'], ['extra']]) {
      const { code, stdout, stderr } = await run(args)
      assert.equal(code, 2, args.join(' '))
      assert.equal(stdout, '')
      assert.match(stderr, /planship-emulator: .+\n/)
    }
  })

  it('exits with 1 when the fixture cannot be loaded', async () => {
    const { code, stderr } = await run(['--port', '0', '--fixture', 'does/not/exist.json'])
    assert.equal(code, 1)
    assert.match(stderr, /does\/not\/exist\.json/)
  })
})
