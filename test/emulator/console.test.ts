import assert from 'node:assert/strict'
import { pathToFileURL } from 'node:url'
import { consoleDirectory } from '../../src/emulator/console.js'
import { startEmulator, type Emulator } from '../../src/emulator/index.js'
import { raw, sdk, useEmulator } from './support.js'

/** Reads Server-Sent Events from an open response until `until` accepts one (or the stream ends). */
async function readEvents(
  response: Response,
  until: (event: { event: string; data: unknown }) => boolean,
): Promise<Array<{ event: string; data: unknown }>> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  const events: Array<{ event: string; data: unknown }> = []
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return events
    buffer += value
    let end: number
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const event = /^event: (.*)$/m.exec(block)?.[1]
      const data = /^data: (.*)$/m.exec(block)?.[1]
      if (event === undefined || data === undefined) continue
      events.push({ event, data: JSON.parse(data) })
      if (until(events.at(-1)!)) {
        await reader.cancel()
        return events
      }
    }
  }
}

describe('emulator console', () => {
  let emu!: Emulator
  useEmulator((started) => (emu = started))

  it('serves the page at / and /_emulator/console, its files, and nothing from elsewhere', async () => {
    for (const path of ['/', '/_emulator/console']) {
      const page = await raw(emu, 'GET', path)
      assert.equal(page.status, 200, path)
      assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
      assert.match(page.text, /<title>Planship emulator<\/title>/)
      // Only the emulator's own files and endpoints: no CDN, font or other network.
      assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'.*connect-src 'self'/)
      assert.doesNotMatch(page.text, /https?:\/\//)
    }
    // Every module the page imports, and through them the event stream, served from the emulator.
    const served = new Set<string>()
    const pending = ['console.js']
    let scripts = ''
    while (pending.length > 0) {
      const name = pending.pop() as string
      if (served.has(name)) continue
      served.add(name)
      const script = await raw(emu, 'GET', `/_emulator/console/${name}`)
      assert.equal(script.status, 200, name)
      assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/)
      assert.doesNotMatch(script.text, /https?:\/\//, name)
      scripts += script.text
      for (const [, imported] of script.text.matchAll(/from '\.\/([\w-]+\.js)'/g)) pending.push(imported as string)
    }
    assert.deepEqual([...served].sort(), ['admin-api.js', 'console.js', 'dom.js', 'feed.js', 'views.js'])
    assert.match(scripts, /new EventSource\('\/_emulator\/events'\)/)
    const style = await raw(emu, 'GET', '/_emulator/console/console.css')
    assert.match(style.headers.get('content-type') ?? '', /^text\/css/)
    assert.doesNotMatch(style.text, /url\(|@import|https?:\/\//)
    assert.equal((await raw(emu, 'GET', '/_emulator/console/../fixture.ts')).status, 404)
    // The page is not an API route: never counted.
    assert.deepEqual(emu.requestCounts(), {})
  })

  it('finds its files from src/ (tsx) and, through the fallback, from dist/ after tsc', () => {
    const root = new URL('../../', import.meta.url)
    const fromSrc = consoleDirectory(new URL('src/emulator/console.js', root).href)
    const fromDist = consoleDirectory(new URL('dist/emulator/console.js', root).href)
    assert.equal(fromDist, fromSrc)
    assert.equal(pathToFileURL(fromSrc).href, new URL('src/emulator/console/', root).href)
    assert.throws(() => consoleDirectory('file:///nowhere/emulator/console.js'), /console's files are missing/)
  })

  it('GET /_emulator/state: the catalog, each customer’s usage against limits, and the latest records', async () => {
    const planship = sdk(emu)
    await planship.reportUsage('free-customer', 'api-call', 30)
    await planship.reportUsage('free-customer', 'export', 4, 'project-a')
    const state = (await raw(emu, 'GET', '/_emulator/state')).body as {
      now_ms: number
      products: Array<{
        slug: string
        levers: Array<{ slug: string }>
        plans: Array<{ slug: string; entitlements: Record<string, unknown> }>
      }>
      customers: Array<{
        alternative_id: string
        subscriptions: Array<{ plan: string }>
        levers: Record<string, Array<Record<string, unknown>>>
      }>
      records: { total: number; recent: Array<Record<string, unknown>> }
      settings: unknown
      faults: { config: { down: boolean } }
    }
    assert.ok(state.now_ms <= emu.now() && state.now_ms > emu.now() - 5_000)
    const [product] = state.products
    assert.deepEqual(
      product?.levers.map((l) => l.slug),
      ['api-calls', 'renders-per-minute', 'csv-export', 'max-projects', 'exports-per-project'],
    )
    assert.deepEqual(product?.plans.find((p) => p.slug === 'pro')?.entitlements['max-projects'], -1)

    const free = state.customers.find((c) => c.alternative_id === 'free-customer')
    assert.deepEqual(
      free?.subscriptions.map((s) => s.plan),
      ['free'],
    )
    const levers = Object.fromEntries((free?.levers['acme-api'] ?? []).map((l) => [l.slug, l]))
    assert.deepEqual(
      { ...levers['api-calls'], window: undefined },
      {
        slug: 'api-calls',
        name: 'API calls',
        type: 'metered',
        granted: 100,
        used: 30,
        remaining: 70,
        window: undefined,
      },
    )
    assert.equal((levers['api-calls']?.window as { kind: string }).kind, 'subscription')
    assert.deepEqual(levers['renders-per-minute']?.window, { kind: 'rolling', seconds: 60 })
    assert.deepEqual(levers['csv-export'], { slug: 'csv-export', name: 'CSV export', type: 'boolean', granted: false })
    assert.deepEqual(levers['exports-per-project']?.buckets, [{ bucket: 'project-a', used: 4, remaining: 6 }])
    assert.deepEqual(levers['exports-per-project']?.remaining, { null: 10, 'project-a': 6 })

    assert.equal(state.records.total, 2)
    assert.deepEqual(
      state.records.recent.map((r) => [r.alternative_id, r.metering_id, r.bucket, r.usage]),
      [
        ['free-customer', 'api-call', null, 30],
        ['free-customer', 'export', 'project-a', 4],
      ],
    )
    assert.deepEqual(state.settings, { latency_ms: 0, aggregation_lag_ms: 0 })
    assert.equal(state.faults.config.down, false)
  })

  it('streams metering records as they arrive, and admin changes, over Server-Sent Events', async () => {
    const stream = await fetch(`${emu.url}/_emulator/events`)
    assert.equal(stream.status, 200)
    assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/)
    const events = readEvents(stream, (e) => e.event === 'change')
    const before = emu.now()
    await sdk(emu).reportUsage('pro-customer', 'export', 2, 'project-z')
    await raw(emu, 'PUT', '/_emulator/faults', { body: { down: false } })
    const [record, change] = await events
    assert.equal(record?.event, 'record')
    const data = record?.data as Record<string, unknown>
    assert.deepEqual(
      [data.alternative_id, data.metering_id, data.bucket, data.usage],
      ['pro-customer', 'export', 'project-z', 2],
    )
    assert.ok(Date.parse(String(data.recorded_at)) >= before - 1)
    assert.deepEqual(change, { event: 'change', data: { method: 'PUT', path: '/_emulator/faults' } })
  })
})

describe('emulator console: threshold crossings', () => {
  it('streams a crossing of 80 % and of 100 % of a limit once per period', async () => {
    const emu = await startEmulator()
    try {
      const stream = await fetch(`${emu.url}/_emulator/events`)
      const events = readEvents(
        stream,
        (e) => e.event === 'threshold' && (e.data as { threshold: number }).threshold === 1,
      )
      const planship = sdk(emu)
      await planship.reportUsage('free-customer', 'api-call', 79)
      await planship.reportUsage('free-customer', 'api-call', 1)
      await planship.reportUsage('free-customer', 'api-call', 5)
      await planship.reportUsage('free-customer', 'api-call', 15)
      const crossings = (await events).filter((e) => e.event === 'threshold').map((e) => e.data)
      assert.deepEqual(
        crossings.map((c) => {
          const { alternative_id, lever, threshold, used, limit } = c as Record<string, unknown>
          return [alternative_id, lever, threshold, used, limit]
        }),
        [
          ['free-customer', 'api-calls', 0.8, 80, 100],
          ['free-customer', 'api-calls', 1, 100, 100],
        ],
      )
    } finally {
      await emu.close()
    }
  })
})

describe('emulator console and close', () => {
  it('close() ends open event streams instead of waiting for them', async () => {
    const emu = await startEmulator()
    const stream = await fetch(`${emu.url}/_emulator/events`)
    const ended = readEvents(stream, () => false)
    await emu.close()
    // The stream ends with the emulator (a stream left open would keep this test waiting).
    await assert.rejects(
      ended.then(() => Promise.reject(new Error('ended'))),
      /ended|terminated/,
    )
  })
})
