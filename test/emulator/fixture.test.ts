import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defaultFixture, loadFixture, startEmulator, type Fixture } from '../../src/emulator/index.js'
import { sdk } from './support.js'

const minimal = (): Fixture => ({
  products: [
    {
      slug: 'p',
      levers: [{ slug: 'calls', type: 'metered', meteringIds: ['call'] }],
      plans: [{ slug: 'basic', entitlements: { calls: 10 } }],
    },
  ],
  customers: [{ alternativeId: 'c', subscriptions: [{ product: 'p', plan: 'basic' }] }],
})

describe('emulator fixtures', () => {
  let dir: string

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'planship-emulator-'))
  })
  after(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  it('defaults to the demo fixture', () => {
    assert.equal(loadFixture(), defaultFixture)
    assert.deepEqual(
      defaultFixture.products.map((p) => [p.slug, p.levers.map((l) => l.slug), p.plans.map((pl) => pl.slug)]),
      [
        [
          'acme-api',
          ['api-calls', 'renders-per-minute', 'csv-export', 'max-projects', 'exports-per-project'],
          ['free', 'pro'],
        ],
      ],
    )
    assert.deepEqual(defaultFixture.credentials, [{ clientId: 'demo-client-id', clientSecret: 'demo-client-secret' }])
  })

  it('loads a JSON fixture file, and the emulator serves it', async () => {
    const file = join(dir, 'fixture.json')
    writeFileSync(file, JSON.stringify({ $comment: 'comments are fine', ...minimal() }))
    assert.deepEqual(loadFixture(file).products[0]?.slug, 'p')

    const emu = await startEmulator({ fixture: file })
    try {
      assert.equal(emu.productSlug, 'p')
      assert.deepEqual(await sdk(emu).getEntitlements('c'), { calls: 10 })
    } finally {
      await emu.close()
    }
  })

  it('names the bad field in a TypeError', () => {
    const cases: Array<[(f: Fixture & Record<string, unknown>) => void, RegExp]> = [
      [
        (f) => ((f.products[0]!.levers[0] as unknown as Record<string, unknown>).formula = 'sum'),
        /fixture\.products\[0\]\.levers\[0\]\.formula/,
      ],
      [(f) => (f.products[0]!.levers[0]!.slug = ''), /fixture\.products\[0\]\.levers\[0\]\.slug/],
      [(f) => (f.products[0]!.plans[0]!.entitlements = { nope: 1 }), /entitlements\["nope"\] names no lever/],
      [
        (f) => (f.products[0]!.plans[0]!.entitlements = { calls: 'many' }),
        /entitlements\["calls"\] must be an integer/,
      ],
      [(f) => (f.products[0]!.plans[0]!.durationUnit = 'fortnight' as never), /plans\[0\]\.durationUnit/],
      [
        (f) => (f.customers![0]!.subscriptions = [{ product: 'p', plan: 'gold' }]),
        /customers\[0\]\.subscriptions\[0\]\.plan/,
      ],
      [(f) => (f.customers![0]!.id = 'not-a-uuid'), /customers\[0\]\.id must be a UUID/],
      [(f) => f.customers!.push({ alternativeId: 'c' }), /customers\[1\]\.alternativeId duplicates/],
      [(f) => (f.credentials = []), /fixture\.credentials must not be empty/],
      [(f) => (f.products = []), /fixture\.products/],
      [(f) => (f.meteringIds = ['x']), /fixture\.meteringIds is not a known field/],
      [
        (f) => ((f.products[0]!.levers[0] as unknown as Record<string, unknown>).period = { windowSeconds: 0 }),
        /levers\[0\]\.period\.windowSeconds/,
      ],
    ]
    for (const [mutate, message] of cases) {
      const fixture = minimal() as Fixture & Record<string, unknown>
      mutate(fixture)
      assert.throws(
        () => loadFixture(fixture),
        (error: Error) => error instanceof TypeError && message.test(error.message),
      )
    }
  })

  it("README's fixture example loads, and its per-bucket lever answers as the README says", async () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
    const section = readme.slice(readme.indexOf('## Fixture format'))
    const json = /```json\n([\s\S]*?)```/.exec(section)?.[1]
    assert.ok(json, 'README has a JSON example under "Fixture format"')
    const file = join(dir, 'readme-fixture.json')
    writeFileSync(file, json)
    const emu = await startEmulator({ fixture: file })
    try {
      const planship = sdk(emu)
      assert.deepEqual((await planship.getEntitlements('ada@example.com'))['exports-per-project'], { null: 5 })
      await planship.reportUsage('ada@example.com', 'export', 2, 'q3')
      assert.deepEqual((await planship.getEntitlements('ada@example.com'))['exports-per-project'], { null: 5, q3: 3 })
      assert.equal((await planship.getEntitlements('stripe:cus_Team42'))['support'], 'phone')
    } finally {
      await emu.close()
    }
  })

  it('reports unreadable and malformed files as a TypeError', () => {
    assert.throws(() => loadFixture(join(dir, 'missing.json')), /cannot be read/)
    const broken = join(dir, 'broken.json')
    writeFileSync(broken, '{ "products": ')
    assert.throws(() => loadFixture(broken), /not valid JSON/)
  })
})
