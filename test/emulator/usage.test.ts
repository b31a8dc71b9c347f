import assert from 'node:assert/strict'
import { startEmulator, type Emulator } from '../../src/emulator/index.js'
import { getToken, raw, sdk, statusOf, useEmulator } from './support.js'

const DAY = 86_400_000

describe('emulator entitlements and usage (demo fixture)', () => {
  let emu!: Emulator
  useEmulator((started) => (emu = started))

  it('answers the demo entitlements of the free and pro plans', async () => {
    const planship = sdk(emu)
    assert.deepEqual(await planship.getEntitlements('free-customer'), {
      'api-calls': 100,
      'renders-per-minute': 5,
      'csv-export': false,
      'max-projects': 3,
      'exports-per-project': { null: 10 },
    })
    assert.deepEqual(await planship.getEntitlements('pro-customer'), {
      'api-calls': 10000,
      'renders-per-minute': 100,
      'csv-export': true,
      'max-projects': -1,
      'exports-per-project': { null: 1000 },
    })
  })

  it('answers lever defaults for a customer without a subscription', async () => {
    const planship = sdk(emu)
    await planship.createCustomer({ alternativeId: 'unsubscribed' })
    assert.deepEqual(await planship.getEntitlements('unsubscribed'), {
      'api-calls': 0,
      'renders-per-minute': 0,
      'csv-export': false,
      'max-projects': 0,
      'exports-per-project': { null: 0 },
    })
  })

  it('records reported usage and returns the MeteringRecord on the wire', async () => {
    const token = await getToken(emu)
    const customer = await sdk(emu).getCustomer('free-customer')
    const [subscription] = await sdk(emu).listSubscriptions('free-customer')
    const response = await raw(emu, 'POST', '/api/v1/customers/free-customer/products/acme-api/usage/api-call', {
      token,
      body: { usage: 3 },
    })
    assert.equal(response.status, 200)
    const record = response.body as Record<string, unknown>
    assert.match(record.id as string, /^[0-9a-f-]{36}$/)
    assert.deepEqual(
      { ...record, id: undefined, product_id: undefined },
      {
        id: undefined,
        is_allocated: false,
        usage: 3,
        metering_id: 'api-call',
        customer_id: customer.id,
        product_id: undefined,
        subscription_id: subscription?.subscriptionId,
        bucket: null,
      },
    )
    assert.equal((await sdk(emu).getProduct()).id, record.product_id)
    assert.deepEqual(emu.meteringRecords(), [record])
  })

  it('aggregates usage into lever usage, metering-id usage and remaining entitlements', async () => {
    const planship = sdk(emu)
    const [subscription] = await planship.listSubscriptions('free-customer')
    const subscriptionId = subscription?.subscriptionId as string
    await planship.reportUsage('free-customer', 'api-call', 3)
    await planship.reportUsage('free-customer', 'api-call', 2, 'project-a')
    await planship.reportUsage('free-customer', 'render', 1)

    const expected = {
      total: 5,
      byBucket: { null: 5 },
      bySubscription: { [subscriptionId]: [{ usage: 5, bucket: null }] },
    }
    assert.deepEqual(await planship.getLeverUsage('free-customer', 'api-calls'), expected)
    assert.deepEqual(await planship.getMeteringIdUsage('free-customer', 'api-call'), { 'api-calls': expected })
    const entitlements = await planship.getEntitlements('free-customer')
    assert.equal(entitlements['api-calls'], 95)
    assert.equal(entitlements['renders-per-minute'], 4)
    // Usage is per customer: the other demo customer is untouched.
    assert.equal((await planship.getEntitlements('pro-customer'))['api-calls'], 10000)
    assert.equal(emu.recordedUsage({ customerId: 'free-customer', meteringId: 'api-call' }), 5)
    assert.equal(emu.recordedUsage({ customerId: 'free-customer', meteringId: 'api-call', bucket: null }), 3)
    assert.equal(emu.recordedUsage({ meteringId: 'api-call', bucket: 'project-a' }), 2)
  })

  it('answers zero usage for a lever nothing was reported to', async () => {
    assert.deepEqual(await sdk(emu).getLeverUsage('pro-customer', 'api-calls'), {
      total: 0,
      byBucket: {},
      bySubscription: {},
    })
  })

  it('records usage beyond the limit and clamps the remaining allowance at 0', async () => {
    const planship = sdk(emu)
    await planship.reportUsage('free-customer', 'api-call', 150)
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 0)
    assert.equal((await planship.getLeverUsage('free-customer', 'api-calls')).total, 150)
  })

  it('keeps -1 (unlimited) whatever the usage', async () => {
    const planship = sdk(emu)
    const { id } = await planship.createCustomer({ alternativeId: 'big-spender' })
    await planship.createSubscription(id, 'pro')
    // A second subscription merges most-permissively: -1 beats any number, true beats false.
    await planship.createSubscription(id, 'free')
    await planship.reportUsage(id, 'api-call', 50)
    assert.deepEqual(await planship.getEntitlements(id), {
      'api-calls': 9950,
      'renders-per-minute': 100,
      'csv-export': true,
      'max-projects': -1,
      'exports-per-project': { null: 1000 },
    })
  })

  it('answers {} for an unknown metering id and 404 for an unknown lever or product', async () => {
    const planship = sdk(emu)
    assert.deepEqual(await planship.getMeteringIdUsage('free-customer', 'nothing-meters-this'), {})
    assert.equal(await statusOf(planship.getLeverUsage('free-customer', 'no-such-lever')), 404)
    assert.equal(await statusOf(sdk(emu, 'no-such-product').getEntitlements('free-customer')), 404)
    assert.equal(await statusOf(sdk(emu, 'no-such-product').getProduct()), 404)
  })

  it('rejects a missing, fractional or non-integer usage with 422 and records nothing', async () => {
    const token = await getToken(emu)
    const path = '/api/v1/customers/free-customer/products/acme-api/usage/api-call'
    const cases: Array<[string, { body?: unknown; rawBody?: string; headers?: Record<string, string> }, string]> = [
      ['missing', { body: { bucket: 'x' } }, 'value_error.missing'],
      ['null', { body: { usage: null } }, 'value_error.missing'],
      ['float', { body: { usage: 1.5 } }, 'type_error.integer'],
      ['string', { body: { usage: '3' } }, 'type_error.integer'],
      ['boolean', { body: { usage: true } }, 'type_error.integer'],
    ]
    for (const [name, init, type] of cases) {
      const response = await raw(emu, 'POST', path, { token, ...init })
      assert.equal(response.status, 422, name)
      assert.deepEqual((response.body as { detail: unknown[] }).detail[0], {
        loc: ['body', 'usage'],
        msg: type === 'value_error.missing' ? 'field required' : 'value is not a valid integer',
        type,
      })
    }
    for (const rawBody of ['not json', '', '[1,2]', '{"usage": 1']) {
      const response = await raw(emu, 'POST', path, { token, rawBody, headers: { 'content-type': 'application/json' } })
      assert.equal(response.status, 422, JSON.stringify(rawBody))
      assert.ok(Array.isArray((response.body as { detail: unknown }).detail))
    }
    const badBucket = await raw(emu, 'POST', path, { token, body: { usage: 1, bucket: 5 } })
    assert.equal(badBucket.status, 422)
    const badSubscription = await raw(emu, 'POST', path, { token, body: { usage: 1, subscription_id: 'nope' } })
    assert.equal(badSubscription.status, 422)
    assert.equal(emu.recordedUsage(), 0)
  })

  it('allocates usage to the subscription named in the body', async () => {
    const token = await getToken(emu)
    const planship = sdk(emu)
    const [subscription] = await planship.listSubscriptions('free-customer')
    const path = '/api/v1/customers/free-customer/products/acme-api/usage/api-call'
    const ok = await raw(emu, 'POST', path, {
      token,
      body: { usage: 1, subscription_id: subscription?.subscriptionId },
    })
    assert.equal((ok.body as { subscription_id: string }).subscription_id, subscription?.subscriptionId)
    const [foreign] = await planship.listSubscriptions('pro-customer')
    const wrong = await raw(emu, 'POST', path, { token, body: { usage: 1, subscription_id: foreign?.subscriptionId } })
    assert.equal(wrong.status, 404)
  })

  it('rolls the renders-per-minute window with emulator time', async () => {
    const planship = sdk(emu)
    const remaining = async () => (await planship.getEntitlements('free-customer'))['renders-per-minute']
    await planship.reportUsage('free-customer', 'render', 3)
    assert.equal(await remaining(), 2)
    emu.advanceClock(30_000)
    await planship.reportUsage('free-customer', 'render', 1)
    assert.equal(await remaining(), 1)
    emu.advanceClock(30_001)
    assert.equal(await remaining(), 4)
    assert.equal((await planship.getLeverUsage('free-customer', 'renders-per-minute')).total, 1)
    emu.advanceClock(30_000)
    assert.equal(await remaining(), 5)
    // The monthly quota is not a rolling window: it still counts nothing here, and the record remains.
    assert.equal(emu.recordedUsage({ meteringId: 'render' }), 4)
  })

  it('resets the subscription-period quota when the month renews', async () => {
    const planship = sdk(emu)
    const [before] = await planship.listSubscriptions('free-customer')
    await planship.reportUsage('free-customer', 'api-call', 40)
    emu.advanceClock(20 * DAY)
    await planship.reportUsage('free-customer', 'api-call', 10)
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 50)

    emu.advanceClock(12 * DAY)
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 100)
    const [after] = await planship.listSubscriptions('free-customer')
    assert.deepEqual(after?.lastRenewedAt, before?.renewAt)
    assert.ok((after?.renewAt.getTime() ?? 0) > (before?.renewAt.getTime() ?? 0))
    assert.equal(emu.recordedUsage({ customerId: 'free-customer' }), 50)
  })

  it('resets period usage on a forced renewal', async () => {
    const planship = sdk(emu)
    const [subscription] = await planship.listSubscriptions('free-customer')
    await planship.reportUsage('free-customer', 'api-call', 30)
    await planship.reportUsage('free-customer', 'render', 2)
    const renewed = await raw(emu, 'POST', `/api/v1/subscriptions/${subscription?.subscriptionId}/renewals`, {
      token: await getToken(emu),
    })
    assert.equal(renewed.status, 200)
    assert.equal((renewed.body as { id: string }).id, subscription?.subscriptionId)
    const entitlements = await planship.getEntitlements('free-customer')
    assert.equal(entitlements['api-calls'], 100)
    // Rolling windows are not periods: a renewal leaves them alone.
    assert.equal(entitlements['renders-per-minute'], 3)
    await planship.reportUsage('free-customer', 'api-call', 1)
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 99)
  })
})

describe('emulator aggregation lag', () => {
  let emu: Emulator
  // A clock that only moves when told, so the lag boundary is exact.
  const clock = { now: () => 1_700_000_000_000 }

  before(async () => {
    emu = await startEmulator({ aggregationLagMs: 2_000, clock })
  })
  after(async () => {
    await emu.close()
  })

  it('shows reported usage in usage and entitlements only after the lag', async () => {
    const planship = sdk(emu)
    await planship.reportUsage('free-customer', 'api-call', 10)
    assert.equal(emu.recordedUsage({ customerId: 'free-customer' }), 10)
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 100)
    assert.equal((await planship.getLeverUsage('free-customer', 'api-calls')).total, 0)
    emu.advanceClock(1_999)
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 100)
    emu.advanceClock(1)
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 90)

    emu.setAggregationLag(0)
    await planship.reportUsage('free-customer', 'api-call', 5)
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 85)
  })
})

describe('emulator with a frozen clock', () => {
  let emu: Emulator

  before(async () => {
    emu = await startEmulator({
      clock: { now: () => Date.UTC(2030, 0, 31, 12) },
      fixture: {
        products: [
          {
            slug: 'p',
            levers: [
              { slug: 'calls', type: 'metered', meteringIds: ['call'] },
              { slug: 'calls-per-project', type: 'metered', meteringIds: ['call'], formula: 'per-bucket' },
            ],
            plans: [{ slug: 'basic', entitlements: { calls: 100, 'calls-per-project': 10 } }],
          },
        ],
        customers: [{ alternativeId: 'c', subscriptions: [{ product: 'p', plan: 'basic' }] }],
      },
    })
  })
  after(async () => {
    await emu.close()
  })

  it('separates usage reported before and after a renewal in the same millisecond', async () => {
    const planship = sdk(emu)
    const [subscription] = await planship.listSubscriptions('c')
    await planship.reportUsage('c', 'call', 30, 'x')
    const renewal = await raw(emu, 'POST', `/api/v1/subscriptions/${subscription?.subscriptionId}/renewals`, {
      token: await getToken(emu),
    })
    assert.equal(renewal.status, 200)
    await planship.reportUsage('c', 'call', 1, 'x')
    assert.deepEqual(await planship.getEntitlements('c'), { calls: 99, 'calls-per-project': { null: 10, x: 9 } })
  })

  it('renews monthly plans on calendar months, clamping the day', async () => {
    const [subscription] = await sdk(emu).listSubscriptions('c')
    assert.equal(subscription?.renewAt.toISOString(), '2030-02-28T12:00:00.000Z')
  })
})
