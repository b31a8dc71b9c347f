/**
 * The README's code, as its readers get it: every ```ts block is a whole file that must
 * type-check and run. A block that is only a fragment says so on the line before it, with
 * {@link FRAGMENT_MARKER} (an HTML comment, invisible on GitHub and npm), and is neither checked
 * nor run. Used by test/docs/readme.test.ts (against this checkout's source) and by
 * scripts/check-packed.ts (against the packed tarball, installed into scratch apps).
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Planship } from '@planship/fetch'

/** Put on the line right before a ```ts block that is a fragment, not a file to run. */
export const FRAGMENT_MARKER = '<!-- snippet: fragment -->'

export interface Snippet {
  /** The heading it is under, with `#n` when the heading has several blocks, e.g. `Quick start`. */
  key: string
  /** 1-based line of the opening fence. */
  line: number
  code: string
  fragment: boolean
}

/** A TypeScript user's project, as strict as it gets: libraries (planship-meter's declarations) are checked too. */
export const userCompilerOptions = {
  target: 'ES2022',
  module: 'NodeNext',
  moduleResolution: 'NodeNext',
  strict: true,
  skipLibCheck: false,
  types: ['node'],
}

/** The file a snippet is written to: its key in lower case, `.mts` (ESM whatever the package.json says). */
export function snippetFileName(snippet: { key: string }): string {
  return `${snippet.key.replace(/[^\w]+/g, '-').toLowerCase()}.mts`
}

/** Every ```ts block of a Markdown text, with the heading it is under. */
export function readmeSnippets(markdown: string): Snippet[] {
  const lines = markdown.split('\n')
  const snippets: Snippet[] = []
  const perHeading = new Map<string, number>()
  let heading = '(top)'
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    const title = /^#{1,6} (.+)$/.exec(line)
    if (title !== null) heading = title[1]!.trim()
    if (!line.startsWith('```')) continue
    const end = lines.indexOf('```', i + 1)
    assert.ok(end > i, `README line ${i + 1}: a code block that never ends`)
    if (line.trim() === '```ts') {
      const ordinal = (perHeading.get(heading) ?? 0) + 1
      perHeading.set(heading, ordinal)
      snippets.push({
        key: ordinal === 1 ? heading : `${heading} #${ordinal}`,
        line: i + 1,
        code: lines.slice(i + 1, end).join('\n') + '\n',
        fragment:
          lines
            .slice(0, i)
            .findLast((previous) => previous.trim() !== '')
            ?.trim() === FRAGMENT_MARKER,
      })
    }
    i = end
  }
  return snippets
}

/** Units Planship must have received once a snippet has stopped: `[customer, metering id, units]`. */
export type UsageExpectation = [customerId: string, meteringId: string, units: number]

export interface DriveContext {
  /** The snippet's app, e.g. `http://127.0.0.1:41234` (its `PORT`). */
  app: string
  /** The emulator's base URL. */
  emulator: string
  /** The `METRICS_PORT` the snippet was given. */
  metricsPort: number
}

/** How to exercise one snippet. Without one, a snippet must exit 0 by itself, or serve and stop cleanly on SIGINT. */
export interface SnippetDriver {
  /** Requests to send once the snippet serves on its `PORT`; may return usage expectations of its own. */
  serve?(context: DriveContext): Promise<UsageExpectation[] | void>
  /** Usage the emulator must have received after the snippet stopped. */
  usage?: UsageExpectation[]
  /** What the snippet must have printed. */
  output?: RegExp
}

const post = (url: string, customerId: string) =>
  fetch(url, { method: 'POST', headers: { 'x-customer-id': customerId } })
const get = (url: string, customerId: string) => fetch(url, { headers: { 'x-customer-id': customerId } })

/** A customer of its own on `plan`, so that state kept elsewhere (Redis) cannot mix with another run's. */
async function newCustomer(emulator: string, plan: string): Promise<string> {
  const alternativeId = `readme-${process.pid}-${Date.now()}`
  const response = await fetch(`${emulator}/_emulator/customers`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ alternative_id: alternativeId, plan }),
  })
  assert.equal(response.status, 201, await response.text())
  return alternativeId
}

/** Drivers by snippet key. Every key must name a snippet of the README (the test checks it). */
/** The snippet's GET /v1/usage: the customer's render used, nothing metered by looking, 401 without one. */
async function usagePage(app: string): Promise<void> {
  const page = await get(`${app}/v1/usage`, 'free-customer')
  assert.equal(page.status, 200)
  const status = (await page.json()) as { customerId: string; levers: Record<string, { used?: number }> }
  assert.deepEqual([status.customerId, status.levers['renders-per-minute']?.used], ['free-customer', 1])
  assert.equal((await fetch(`${app}/v1/usage`)).status, 401)
}

export const drivers: Record<string, SnippetDriver> = {
  'Quick start': {
    async serve({ app }) {
      const render = await post(`${app}/v1/renders`, 'free-customer')
      assert.equal(render.status, 200)
      // What the rate-limit headers table says of this route.
      assert.equal(render.headers.get('ratelimit'), '"renders-per-minute";r=4;t=60')
      assert.equal(render.headers.get('ratelimit-policy'), '"renders-per-minute";q=5;w=60')
      assert.equal((await get(`${app}/v1/export.csv`, 'free-customer')).status, 403)
      assert.equal((await get(`${app}/v1/export.csv`, 'pro-customer')).status, 200)
    },
    usage: [['free-customer', 'render', 1]],
  },
  Express: {
    async serve({ app }) {
      const render = await post(`${app}/v1/renders`, 'free-customer')
      assert.equal(render.status, 200)
      assert.deepEqual(await render.json(), { customer: 'free-customer' })
      assert.equal((await get(`${app}/v1/export.csv`, 'free-customer')).status, 403)
      assert.equal((await get(`${app}/v1/export.csv`, 'pro-customer')).status, 200)
    },
    usage: [['free-customer', 'render', 1]],
  },
  Hono: {
    async serve({ app }) {
      const render = await post(`${app}/v1/renders`, 'free-customer')
      assert.equal(render.status, 200)
      assert.equal(render.headers.get('ratelimit'), '"renders-per-minute";r=4;t=60')
      assert.deepEqual(await render.json(), { customer: 'free-customer' })
      const denied = await get(`${app}/v1/export.csv`, 'free-customer')
      assert.equal(denied.status, 403)
      assert.equal(((await denied.json()) as { error: { code: string } }).error.code, 'feature_not_entitled')
      assert.equal((await get(`${app}/v1/export.csv`, 'pro-customer')).status, 200)
      await usagePage(app)
    },
    usage: [['free-customer', 'render', 1]],
  },
  Fastify: {
    async serve({ app }) {
      const render = await post(`${app}/v1/renders`, 'free-customer')
      assert.equal(render.status, 200)
      assert.equal(render.headers.get('ratelimit'), '"renders-per-minute";r=4;t=60')
      assert.deepEqual(await render.json(), { customer: 'free-customer' })
      assert.equal((await get(`${app}/v1/export.csv`, 'free-customer')).status, 403)
      const csv = await get(`${app}/v1/export.csv`, 'pro-customer')
      assert.equal(csv.status, 200)
      assert.equal(await csv.text(), 'id,name\n')
      await usagePage(app)
    },
    usage: [['free-customer', 'render', 1]],
  },
  'Metering outside HTTP': {
    output: /^rendered\nretry later: quota_exceeded\npro-customer may export CSV\n$/,
    usage: [
      ['free-customer', 'render', 3],
      ['pro-customer', 'api-call', 250],
    ],
  },
  'Streaming and long-running work': {
    async serve({ app }) {
      // 100 api-calls a month, reserved 16 at a time: 6 blocks fit, a 7th does not.
      const stream = await (await get(`${app}/v1/words`, 'free-customer')).text()
      assert.equal(stream.match(/^data: {"word"/gm)?.length, 96)
      assert.match(stream, /event: quota_exceeded\ndata: \{\}\n\n$/)
    },
    usage: [['free-customer', 'api-call', 96]],
  },
  'Typed state': {
    async serve({ app }) {
      const render = await post(`${app}/v1/renders`, 'free-customer')
      assert.equal(render.status, 200)
      assert.equal(((await render.json()) as { decisions: unknown[] }).decisions.length, 1)
      assert.deepEqual(await (await get(`${app}/whoami`, 'pro-customer')).json(), { customer: 'pro-customer' })
    },
    usage: [['free-customer', 'render', 1]],
  },
  'Running several replicas': {
    async serve({ app, emulator }) {
      const customer = await newCustomer(emulator, 'pro')
      for (let i = 0; i < 2; i++) assert.equal((await post(`${app}/v1/search`, customer)).status, 200)
      return [[customer, 'api-call', 2]]
    },
  },
  'Quotas customers can see and change': {
    async serve({ app, emulator }) {
      const customer = await newCustomer(emulator, 'free')
      for (let i = 0; i < 80; i++) assert.equal((await get(`${app}/v1/search`, customer)).status, 200)
      const status = (await (await get(`${app}/v1/usage`, customer)).json()) as {
        customerId: string
        levers: Record<string, { limit: number; used: number; remaining: number }>
      }
      assert.equal(status.customerId, customer)
      assert.deepEqual(
        [status.levers['api-calls']!.limit, status.levers['api-calls']!.used, status.levers['api-calls']!.remaining],
        [100, 80, 20],
      )
      assert.equal((await fetch(`${app}/v1/usage`)).status, 401)
      // The upgrade, as the app's billing flow makes it: through Planship's API.
      const planship = new Planship(
        'acme-api',
        { clientId: 'demo-client-id', clientSecret: 'demo-client-secret' },
        { baseUrl: emulator },
      )
      const [subscription] = await planship.listSubscriptions(customer, 'acme-api')
      await planship.changeSubscriptionPlan(customer, subscription!.subscriptionId, 'pro')
      const changed = await post(`${app}/hooks/plan-changed`, customer)
      assert.equal(((await changed.json()) as { limit: number }).limit, 10_000)
      return [[customer, 'api-call', 80]]
    },
    output: /e-mail readme-[\w-]+: 80 % of api-calls used \(80 of 100\)/,
  },
  'Testing your app with the emulator': { output: /token: 1/ },
  'Metrics and traces': {
    async serve({ app, metricsPort }) {
      assert.equal((await post(`${app}/v1/renders`, 'free-customer')).status, 200)
      const scraped = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
      assert.match(scraped, /planship_meter_decisions_total\{[^}]*planship_meter_decision_allowed="true"[^}]*\} 1/)
    },
    usage: [['free-customer', 'render', 1]],
  },
}

/** A port free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => (socket.destroy(), resolve(true))).once('error', () => resolve(false))
    socket.unref()
  })
}

async function usageOf(emulator: string, customerId: string, meteringId: string): Promise<number> {
  const query = new URLSearchParams({ customer_id: customerId, metering_id: meteringId })
  const response = await fetch(`${emulator}/_emulator/usage?${query}`)
  return ((await response.json()) as { usage: number }).usage
}

/**
 * Runs a snippet (`command`, from `cwd`) against the emulator at `emulator`, with `PORT`,
 * `METRICS_PORT` and `PLANSHIP_BASE_URL` set: it must either exit 0 by itself, or serve on `PORT`,
 * take the driver's requests and stop cleanly on SIGINT (Ctrl-C). Then the usage the driver
 * expects must have reached the emulator. Resets the emulator first.
 */
export async function runSnippet(
  snippet: { key: string; command: string[]; cwd?: string; env?: Record<string, string> },
  emulator: string,
): Promise<string> {
  const driver = drivers[snippet.key] ?? {}
  assert.ok((await fetch(`${emulator}/_emulator/reset`, { method: 'POST' })).ok)
  const port = await freePort()
  const metricsPort = await freePort()
  const [command, ...args] = snippet.command
  const child: ChildProcess = spawn(command!, args, {
    cwd: snippet.cwd,
    env: {
      ...process.env,
      ...snippet.env,
      PLANSHIP_BASE_URL: emulator,
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const said = () => `${snippet.key}: stdout:\n${stdout}\nstderr:\n${stderr}`
  try {
    let serving = false
    for (let tries = 0; !serving && child.exitCode === null && child.signalCode === null && tries < 300; tries++) {
      serving = await accepts(port)
      if (!serving) await sleep(50)
    }
    let expected = driver.usage ?? []
    if (serving) {
      const own = await driver.serve?.({ app: `http://127.0.0.1:${port}`, emulator, metricsPort })
      if (own) expected = [...expected, ...own]
      child.kill('SIGINT')
    } else {
      assert.equal(driver.serve, undefined, `${said()}\nit should serve on PORT, and exited`)
    }
    const [code, signal] = await Promise.race([
      exited,
      sleep(15_000, undefined, { ref: false }).then(() =>
        assert.fail(`${said()}\nit did not exit${serving ? ' on SIGINT' : ''}`),
      ),
    ])
    assert.equal(signal, null, said())
    assert.equal(code, 0, said())
    if (driver.output !== undefined) assert.match(stdout, driver.output, said())
    for (const [customerId, meteringId, units] of expected) {
      assert.equal(await usageOf(emulator, customerId, meteringId), units, `${said()}\n${customerId} ${meteringId}`)
    }
    return stdout
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
}
