import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../', import.meta.url))

/** A demo server (`npm start` by default) as a child process, on its embedded emulator, on free ports. */
export interface DemoProcess {
  child: ChildProcessWithoutNullStreams
  /** Everything it printed so far, stdout and stderr. */
  output(): string
  apiUrl: string
  emulatorUrl: string
  /** SIGINT (which flushes usage), then the exit code; SIGKILL if it is not gone within `timeoutMs`. */
  stop(timeoutMs?: number): Promise<number | null>
}

export async function startDemo(script = 'examples/koa-api/server.ts'): Promise<DemoProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: root,
    // Without Planship credentials in the environment the demo runs on the embedded emulator.
    env: { ...process.env, PORT: '0', PLANSHIP_CLIENT_ID: '', PLANSHIP_CLIENT_SECRET: '' },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  while (!/Ctrl-C/.test(output)) {
    if (child.exitCode !== null) throw new Error(`demo exited early:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const apiUrl = /Demo API on (\S+)/.exec(output)?.[1]
  const emulatorUrl = /emulator at (\S+)\)/.exec(output)?.[1]
  if (apiUrl === undefined || emulatorUrl === undefined) {
    child.kill('SIGKILL')
    throw new Error(`demo printed no URLs:\n${output}`)
  }
  return {
    child,
    output: () => output,
    apiUrl,
    emulatorUrl,
    stop: async (timeoutMs = 10_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      const exited = once(child, 'exit') as Promise<[number | null]>
      child.kill('SIGINT')
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
      const [code] = await exited
      clearTimeout(timer)
      return code
    },
  }
}
