import assert from 'node:assert/strict'
import { existsSync, mkdirSync } from 'node:fs'
import { Planship } from '@planship/fetch'
import { chromium, type Browser, type Page } from 'playwright-core'
import { startDemo, type DemoProcess } from '../examples/demo-process.js'

/**
 * The emulator console in a real browser, against `npm start` (the demo API on its embedded
 * emulator): records arrive live, bars move, the controls drive the emulator, and the demo
 * follows its failMode when Planship goes down. Uses Debian's Chromium; never downloads a browser.
 */

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'
const OUTPUT = new URL('../../test-output/', import.meta.url)

/** What the demo's meter admits when Planship cannot be reached and it has no data: the default failMode, 'open'. */
const DEMO_FAIL_MODE_STATUS = 200

/** Polls `check` until it holds; fails after `timeoutMs` saying what was awaited. */
async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe('emulator console in a browser', function () {
  this.timeout(30_000)
  let demo: DemoProcess | undefined
  let browser: Browser | undefined
  let page!: Page
  const errors: string[] = []

  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `Chromium not found at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM_PATH`,
      )
    }
    mkdirSync(OUTPUT, { recursive: true })
    demo = await startDemo()
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
      ],
    })
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
    // Well within the suite's timeout, so that a missing element fails with its own message.
    page.setDefaultTimeout(8_000)
    page.on('pageerror', (error) => errors.push(error.message))
    // The page may talk to the emulator only; anything else would be a CDN, a font, a tracker.
    const emulatorOrigin = new URL(demo.emulatorUrl).origin
    await page.route('**/*', (route) => {
      if (new URL(route.request().url()).origin === emulatorOrigin) return route.continue()
      errors.push(`request outside the emulator: ${route.request().url()}`)
      return route.abort()
    })
  })

  after(async () => {
    await browser?.close()
    if (demo !== undefined) {
      // Planship back up, so that the demo's shutdown flush is not stuck retrying.
      await fetch(`${demo.emulatorUrl}/_emulator/faults`, { method: 'DELETE' }).catch(() => undefined)
      await demo.stop()
    }
  })

  const customer = (id: string) => page.locator(`[data-customer="${id}"]`)
  const meter = (id: string, lever: string) => customer(id).locator(`[data-lever="${lever}"] [role="meter"]`).first()
  /** A request to the demo API as `customerId`; asserts it was admitted. */
  const call = async (method: string, path: string, customerId: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${demo!.apiUrl}${path}`, {
      method,
      headers: { 'x-customer-id': customerId, ...headers },
    })
    assert.equal(response.status, 200, `${method} ${path} as ${customerId}: ${await response.text()}`)
  }

  /** Rows the event stream added to the feed (a page refresh adds rows too, but never marks them fresh). */
  const freshFeed = async () => {
    const texts = (selector: string) => page.locator(`#feed li.fresh ${selector}`).allTextContents()
    const [customers, meteringIds, usages] = await Promise.all([
      texts('.feed-customer'),
      texts('.feed-metering-id'),
      texts('.feed-usage'),
    ])
    return customers.map((customer, i) => ({
      customer,
      meteringId: meteringIds[i],
      usage: Number(usages[i]?.replace(/[^0-9]/g, '')),
    }))
  }

  it('shows records arriving live and usage bars moving as the demo reports usage', async () => {
    await page.goto(`${demo!.emulatorUrl}/`)
    await page.locator('#feed-status', { hasText: 'live' }).waitFor()
    await page.locator('#product-title', { hasText: 'Acme API' }).waitFor()
    assert.equal(await meter('free-customer', 'api-calls').getAttribute('aria-valuenow'), '0')
    assert.equal(await meter('free-customer', 'api-calls').getAttribute('aria-valuemax'), '100')

    for (let i = 0; i < 37; i++) await call('GET', '/v1/search?q=x', 'free-customer')
    for (let i = 0; i < 4; i++) await call('POST', '/v1/renders', 'free-customer', { 'x-project': 'launch-video' })
    for (let i = 0; i < 2; i++) await call('POST', '/v1/renders', 'pro-customer')
    // The demo has no export route: the per-bucket lever is fed straight through the official client.
    const planship = new Planship(
      'acme-api',
      { clientId: 'demo-client-id', clientSecret: 'demo-client-secret' },
      { baseUrl: demo!.emulatorUrl },
    )
    await planship.reportUsage('free-customer', 'export', 3, 'website')
    await planship.reportUsage('free-customer', 'export', 9, 'mobile-app')

    // The meter flushes every second: the records come over the event stream, and the bars follow.
    const expected = [
      ['free-customer', 'api-call', 37],
      ['free-customer', 'render', 4],
      ['pro-customer', 'render', 2],
      ['free-customer', 'export', 12],
    ] as const
    await eventually(
      async () => {
        const feed = await freshFeed()
        const sum = (who: string, meteringId: string) =>
          feed.filter((r) => r.customer === who && r.meteringId === meteringId).reduce((t, r) => t + r.usage, 0)
        return expected.every(([who, meteringId, usage]) => sum(who, meteringId) === usage)
      },
      `records of ${JSON.stringify(expected)} in the live feed`,
    )
    await meter('free-customer', 'api-calls').and(page.locator('[aria-valuenow="37"]')).waitFor()
    await meter('free-customer', 'renders-per-minute').and(page.locator('[aria-valuenow="4"]')).waitFor()
    await meter('pro-customer', 'renders-per-minute').and(page.locator('[aria-valuenow="2"]')).waitFor()
    assert.equal(
      await customer('free-customer').locator('[data-lever="api-calls"] .remaining').textContent(),
      '63 left',
    )
    const bucket = (name: string) =>
      customer('free-customer').locator(`[data-lever="exports-per-project"] [data-bucket="${name}"] [role="meter"]`)
    await bucket('mobile-app').and(page.locator('[aria-valuenow="9"][aria-valuemax="10"]')).waitFor()
    await bucket('website').and(page.locator('[aria-valuenow="3"]')).waitFor()
    await meter('free-customer', 'api-calls').locator('span[style*="width: 37%"]').waitFor()
  })

  it('shows a threshold crossing (80 % of a limit) in the live feed, once', async () => {
    const planship = new Planship(
      'acme-api',
      { clientId: 'demo-client-id', clientSecret: 'demo-client-secret' },
      { baseUrl: demo!.emulatorUrl },
    )
    // 37 api calls so far (the test above): 45 more make 82 of 100, past 80 %.
    await planship.reportUsage('free-customer', 'api-call', 45)
    await planship.reportUsage('free-customer', 'api-call', 1)
    // (The renders of the test above already made one: 4 of 5 renders a minute.)
    const row = page.locator('#feed li.threshold[data-threshold="api-calls 0.8"]')
    await row.waitFor()
    assert.equal(await row.locator('.feed-threshold').textContent(), '80 %')
    assert.equal(await row.locator('.feed-lever').textContent(), 'api-calls')
    assert.equal(await row.locator('.feed-customer').textContent(), 'free-customer')
    assert.equal(await row.locator('.feed-usage').textContent(), '82 / 100')
    assert.equal(await page.locator('#feed li.threshold[data-threshold^="api-calls"]').count(), 1, 'once')
  })

  it('creates a customer on a plan from the form', async () => {
    await page.fill('#new-alternative-id', 'cold@example.com')
    await page.selectOption('#new-plan', 'acme-api/pro')
    await page.click('button:has-text("Create customer")')
    await customer('cold@example.com').locator('.plan-badge', { hasText: 'pro' }).waitFor()
    assert.equal(await meter('cold@example.com', 'api-calls').getAttribute('aria-valuemax'), '10000')
    await page.screenshot({ path: new URL('console-desktop.png', OUTPUT).pathname })

    // A taken alternative id: the emulator's 409 shows as the message, nothing else changes.
    await page.fill('#new-alternative-id', 'free-customer')
    await page.click('button:has-text("Create customer")')
    await page.locator('#message.error', { hasText: 'already exists' }).waitFor()
  })

  it('sets latency, 503 and apply-then-fail rates on reports, and advances the clock', async () => {
    const admin = async (path: string) => (await fetch(`${demo!.emulatorUrl}/_emulator/${path}`)).json()
    await page.fill('#latency', '25')
    await page.fill('#error-rate', '30')
    await page.fill('#atf-rate', '10')
    await page.click('button:has-text("Apply faults")')
    await page.locator('#message', { hasText: 'Faults applied' }).waitFor()
    const state = (await admin('state')) as {
      settings: { latency_ms: number }
      faults: { config: { rules: unknown[] } }
    }
    assert.equal(state.settings.latency_ms, 25)
    assert.deepEqual(state.faults.config.rules, [
      { route: 'reportUsage', kind: 'error', rate: 0.3, status: 503 },
      { route: 'reportUsage', kind: 'apply-then-fail', rate: 0.1, mode: 'status', status: 503 },
    ])
    // Back to none: the page removes the rules it manages.
    for (const field of ['#latency', '#error-rate', '#atf-rate']) await page.fill(field, '0')
    await page.click('button:has-text("Apply faults")')
    await eventually(async () => {
      const { settings, faults } = (await admin('state')) as typeof state
      return settings.latency_ms === 0 && faults.config.rules.length === 0
    }, 'no latency and no fault rules')

    // A minute later the renders have left free-customer's 60 s window.
    const before = Date.parse(((await admin('state')) as { now: string }).now)
    await page.click('button:has-text("+1 min")')
    await page.locator('#message', { hasText: 'Clock advanced +1 min' }).waitFor()
    await meter('free-customer', 'renders-per-minute').and(page.locator('[aria-valuenow="0"]')).waitFor()
    assert.ok(Date.parse(((await admin('state')) as { now: string }).now) - before >= 60_000)
  })

  it('takes Planship down: the demo’s next cold request follows its failMode; then up, and reset', async () => {
    await page.click('#down')
    await page.locator('#planship-status', { hasText: 'down' }).waitFor()
    const faults = (await (await fetch(`${demo!.emulatorUrl}/_emulator/faults`)).json()) as {
      config: { down: boolean }
    }
    assert.equal(faults.config.down, true)

    // cold@example.com has never been seen by the demo's meter: no cache, and Planship is down.
    const cold = await fetch(`${demo!.apiUrl}/v1/search?q=x`, { headers: { 'x-customer-id': 'cold@example.com' } })
    assert.equal(cold.status, DEMO_FAIL_MODE_STATUS, await cold.text())
    const counts = (await (await fetch(`${demo!.emulatorUrl}/_emulator/faults`)).json()) as {
      counts: Record<string, number>
    }
    assert.ok((counts.counts['down'] ?? 0) > 0, 'the meter did try Planship, and was refused')

    await page.setViewportSize({ width: 390, height: 844 })
    await page.screenshot({ path: new URL('console-phone.png', OUTPUT).pathname })
    await page.screenshot({ path: new URL('console-phone-full.png', OUTPUT).pathname, fullPage: true })
    // Nothing wider than the phone's screen: no sideways scrolling of the page itself.
    const fits = await page.evaluate(() => {
      // Runs in the page; the test's TypeScript has no DOM types.
      const page = globalThis as unknown as {
        document: { documentElement: { scrollWidth: number } }
        innerWidth: number
      }
      return page.document.documentElement.scrollWidth <= page.innerWidth
    })
    assert.ok(fits, 'the page fits the width of a phone')

    await page.click('#up')
    await page.locator('#planship-status', { hasText: 'up' }).waitFor()
    await page.setViewportSize({ width: 1280, height: 800 })
    await page.click('#reset')
    await customer('cold@example.com').waitFor({ state: 'detached' })
    assert.equal(await page.locator('#feed li').count(), 0)
    assert.deepEqual(errors, [], 'no page error, no request outside the emulator')
  })
})
