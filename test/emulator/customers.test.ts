import assert from 'node:assert/strict'
import { startEmulator, type Emulator } from '../../src/emulator/index.js'
import { getToken, raw, sdk, statusOf, useEmulator } from './support.js'

describe('emulator customers', () => {
  let emu!: Emulator
  useEmulator((started) => (emu = started))

  it('has the fixture customers, addressable by alternative id or UUID', async () => {
    const planship = sdk(emu)
    const byAlternativeId = await planship.getCustomer('free-customer')
    assert.equal(byAlternativeId.alternativeId, 'free-customer')
    assert.match(byAlternativeId.id, /^[0-9a-f-]{36}$/)
    const byUuid = await planship.getCustomer(byAlternativeId.id)
    assert.deepEqual(byUuid, byAlternativeId)
  })

  it('keeps fixture ids stable across resets and restarts', async () => {
    const before = (await sdk(emu).getCustomer('pro-customer')).id
    emu.reset()
    assert.equal((await sdk(emu).getCustomer('pro-customer')).id, before)
    const other = await startEmulator()
    try {
      assert.equal((await sdk(other).getCustomer('pro-customer')).id, before)
    } finally {
      await other.close()
    }
  })

  it('answers 404 for an unknown customer, as bootstrap flows expect', async () => {
    const planship = sdk(emu)
    assert.equal(await statusOf(planship.getCustomer('nobody@example.com')), 404)
    assert.equal(await statusOf(planship.getEntitlements('nobody@example.com')), 404)
    assert.equal(await statusOf(planship.reportUsage('nobody@example.com', 'api-call', 1)), 404)
    const response = await raw(emu, 'GET', '/api/v1/customers/nobody', { token: await getToken(emu) })
    assert.deepEqual(response.body, { detail: 'Customer not found' })
  })

  it('creates a customer with subscriptions: [] and metadata, then deletes it', async () => {
    const planship = sdk(emu)
    const created = await planship.createCustomer({
      alternativeId: 'new@example.com',
      name: 'New',
      email: 'new@example.com',
      metadata: { tier: 'gold' },
    })
    assert.deepEqual(created.subscriptions, [])
    assert.equal(created.name, 'New')
    assert.deepEqual(created.metadata, { tier: 'gold' })
    assert.equal((await planship.getCustomer('new@example.com')).id, created.id)

    const deleted = await planship.deleteCustomer(created.id)
    assert.equal(deleted.id, created.id)
    assert.equal(await statusOf(planship.getCustomer('new@example.com')), 404)
  })

  it('creates a customer from an empty body and refuses a taken alternative id with 409', async () => {
    const planship = sdk(emu)
    const anonymous = await planship.createCustomer()
    assert.equal(anonymous.alternativeId, undefined)
    assert.equal(await statusOf(planship.createCustomer({ alternativeId: 'free-customer' })), 409)
  })

  it('answers 422, not a crash, to a malformed customer body', async () => {
    const token = await getToken(emu)
    const broken = await raw(emu, 'POST', '/api/v1/customers', {
      token,
      rawBody: '{"alternative_id": ',
      headers: { 'content-type': 'application/json' },
    })
    assert.equal(broken.status, 422)
    const wrongType = await raw(emu, 'POST', '/api/v1/customers', { token, body: { alternative_id: 42 } })
    assert.equal(wrongType.status, 422)
    assert.deepEqual((wrongType.body as { detail: Array<{ loc: unknown }> }).detail[0]?.loc, ['body', 'alternative_id'])
    assert.equal((await raw(emu, 'GET', '/api/v1/health')).status, 200)
  })

  const awkwardIds = [
    'user@example.com',
    'stripe:cus_Qv7TP2s0BZ6XAV',
    'team a/b',
    'name with  spaces',
    'Zoë 日本 🚀',
    'literal %2F and %',
    'question?and#hash&amp=1',
  ]

  for (const alternativeId of awkwardIds) {
    it(`round-trips the alternative id ${JSON.stringify(alternativeId)} through every customer route`, async () => {
      const planship = sdk(emu)
      const created = await planship.createCustomer({ alternativeId })
      await planship.createSubscription(alternativeId, 'free')
      const fetched = await planship.getCustomer(alternativeId)
      assert.equal(fetched.id, created.id)
      assert.equal(fetched.alternativeId, alternativeId)

      const record = await planship.reportUsage(alternativeId, 'api-call', 7)
      assert.equal(record.customerId, created.id)
      assert.equal((await planship.getEntitlements(alternativeId))['api-calls'], 93)
      assert.equal((await planship.getLeverUsage(alternativeId, 'api-calls')).total, 7)
      assert.equal((await planship.listSubscriptions(alternativeId)).length, 1)
      assert.equal(emu.recordedUsage({ customerId: alternativeId }), 7)
      assert.equal(emu.recordedUsage({ customerId: created.id }), 7)
    })
  }

  it('creates subscribed customers with the createCustomer() helper', async () => {
    const { id } = emu.createCustomer('helper@example.com', 'pro')
    const planship = sdk(emu)
    assert.equal((await planship.getCustomer('helper@example.com')).id, id)
    assert.equal((await planship.getEntitlements(id))['max-projects'], -1)
    emu.createCustomer('helper-default')
    assert.equal((await planship.getEntitlements('helper-default'))['api-calls'], 100)
    assert.throws(() => emu.createCustomer('helper@example.com'))
    assert.throws(() => emu.createCustomer('x', 'no-such-plan'), TypeError)
  })

  it('creates a customer on a plan from an object, naming a bad field in a TypeError', async () => {
    const { id } = emu.createCustomer({ alternativeId: 'acme@example.com', plan: 'pro', name: 'Acme' })
    const customer = await sdk(emu).getCustomer('acme@example.com')
    assert.deepEqual([customer.id, customer.name], [id, 'Acme'])
    assert.equal((await sdk(emu).getEntitlements('acme@example.com'))['csv-export'], true)
    assert.throws(() => emu.createCustomer({ alternativeId: 'y', plan: 'gold' }), /^TypeError: plan: .*'free', 'pro'/)
    assert.throws(() => emu.createCustomer({ alternativeId: 'y', product: 'nope' }), /^TypeError: product: /)
    assert.throws(() => emu.createCustomer({ alternativeId: 'acme@example.com' }), /already exists/)
    assert.equal(await statusOf(sdk(emu).getCustomer('y')), 404)
  })

  describe('POST /_emulator/customers', () => {
    it('creates a customer on a plan: 201 with the customer as the API shows it', async () => {
      const response = await raw(emu, 'POST', '/_emulator/customers', {
        body: { alternative_id: 'acme@example.com', plan: 'pro', name: 'Acme', email: 'ops@acme.example' },
      })
      assert.equal(response.status, 201)
      const body = response.body as { id: string; alternative_id: string; name: string; subscriptions: unknown[] }
      assert.equal(body.alternative_id, 'acme@example.com')
      assert.equal(body.name, 'Acme')
      assert.deepEqual(
        body.subscriptions.map((s) => (s as { plan: { slug: string } }).plan.slug),
        ['pro'],
      )
      const planship = sdk(emu)
      assert.deepEqual(await planship.getCustomer(body.id), await planship.getCustomer('acme@example.com'))
      assert.equal((await planship.getEntitlements('acme@example.com'))['api-calls'], 10_000)
      // Without a plan: the first plan of the product.
      const free = await raw(emu, 'POST', '/_emulator/customers', { body: { alternative_id: 'someone' } })
      assert.equal(free.status, 201)
      assert.equal((await planship.getEntitlements('someone'))['api-calls'], 100)
    })

    it('answers 422 for an unknown plan or key, 409 for a taken alternative id, and creates nothing', async () => {
      const post = (body: unknown) => raw(emu, 'POST', '/_emulator/customers', { body })
      const cases: Array<[unknown, number, unknown[]]> = [
        [{ alternative_id: 'x', plan: 'enterprise' }, 422, ['body', 'plan']],
        [{ alternative_id: 'x', product: 'other' }, 422, ['body', 'product']],
        [{ alternative_id: 'x', planSlug: 'pro' }, 422, ['body', 'planSlug']],
        [{ plan: 'pro' }, 422, ['body', 'alternative_id']],
        [{ alternative_id: 7 }, 422, ['body', 'alternative_id']],
      ]
      for (const [body, status, loc] of cases) {
        const response = await post(body)
        assert.equal(response.status, status, JSON.stringify(body))
        assert.deepEqual((response.body as { detail: Array<{ loc: unknown }> }).detail[0]?.loc, loc)
      }
      assert.match(JSON.stringify((await post({ alternative_id: 'x', plan: 'gold' })).body), /'free', 'pro'/)
      assert.equal(await statusOf(sdk(emu).getCustomer('x')), 404)

      const taken = await post({ alternative_id: 'free-customer', plan: 'pro' })
      assert.equal(taken.status, 409)
      assert.match(String((taken.body as { detail: string }).detail), /already exists/)
      assert.equal((await sdk(emu).getEntitlements('free-customer'))['api-calls'], 100)
    })
  })
})
