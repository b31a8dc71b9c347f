import assert from 'node:assert/strict'
import type { Emulator } from '../../src/emulator/index.js'
import { getToken, raw, sdk, statusOf, useEmulator } from './support.js'

describe('emulator products, plans and subscriptions', () => {
  let emu!: Emulator
  useEmulator((started) => (emu = started))

  it('describes the product, its levers and plans in the SDK shapes', async () => {
    const planship = sdk(emu)
    const product = await planship.getProduct()
    assert.equal(product.slug, 'acme-api')
    assert.equal(product.name, 'Acme API')
    assert.match(product.organizationId, /^[0-9a-f-]{36}$/)

    const levers = await planship.listLevers()
    assert.deepEqual(
      levers.map((l) => [l.slug, l.defaultValue]),
      [
        ['api-calls', '0'],
        ['renders-per-minute', '0'],
        ['csv-export', 'false'],
        ['max-projects', '0'],
        ['exports-per-project', '0'],
      ],
    )
    assert.deepEqual(
      (await planship.listPlans()).map((p) => p.slug),
      ['free', 'pro'],
    )
    const pro = await planship.getPlan('pro')
    assert.deepEqual(
      pro.entitlements.map((e) => [e.name, e.value, e.formattedValue]),
      [
        ['api-calls', 10000, '10000'],
        ['renders-per-minute', 100, '100'],
        ['csv-export', true, 'Yes'],
        ['max-projects', -1, 'Unlimited'],
        ['exports-per-project', 1000, '1000'],
      ],
    )
    assert.equal(await statusOf(planship.getPlan('enterprise')), 404)

    const token = await getToken(emu)
    const lever = await raw(emu, 'GET', '/api/v1/products/acme-api/levers/renders-per-minute', { token })
    assert.equal(lever.status, 200)
    assert.deepEqual((lever.body as { metering_ids: string[] }).metering_ids, ['render'])
    assert.equal((await raw(emu, 'GET', '/api/v1/products/acme-api/levers/nope', { token })).status, 404)
  })

  it('has a per-bucket lever: each project its own allowance, remaining keyed by bucket with "null" unbucketed', async () => {
    const planship = sdk(emu)
    const token = await getToken(emu)
    const lever = (await raw(emu, 'GET', '/api/v1/products/acme-api/levers/exports-per-project', { token })).body
    assert.deepEqual((lever as { metering_ids: string[] }).metering_ids, ['export'])
    assert.deepEqual((lever as { configuration: unknown }).configuration, {
      type: 'metered',
      default: 0,
      formula: 'per-bucket',
      period: 'subscription',
      scope: 'subscription',
    })
    assert.deepEqual((await planship.getEntitlements('free-customer'))['exports-per-project'], { null: 10 })
    assert.deepEqual((await planship.getEntitlements('pro-customer'))['exports-per-project'], { null: 1000 })

    await planship.reportUsage('free-customer', 'export', 3, 'project-a')
    await planship.reportUsage('free-customer', 'export', 10, 'project-b')
    await planship.reportUsage('free-customer', 'export', 1)
    assert.deepEqual((await planship.getEntitlements('free-customer'))['exports-per-project'], {
      null: 9,
      'project-a': 7,
      'project-b': 0,
    })
    const usage = await planship.getLeverUsage('free-customer', 'exports-per-project')
    assert.deepEqual(usage.byBucket, { 'project-a': 3, 'project-b': 10, null: 1 })
    assert.equal(usage.total, 14)
    // The other levers are fed by other metering ids.
    assert.equal((await planship.getEntitlements('free-customer'))['api-calls'], 100)
  })

  it('creates, lists, reads and changes subscriptions', async () => {
    const planship = sdk(emu)
    const { id } = await planship.createCustomer({ alternativeId: 'subscriber@example.com' })
    const created = await planship.createSubscription(id, 'free')
    assert.equal(created.plan.slug, 'free')
    assert.equal(created.isActive, true)
    assert.equal(created.autoRenew, true)
    assert.ok(created.renewAt.getTime() > created.startAt.getTime())

    const listed = await planship.listSubscriptions('subscriber@example.com', 'acme-api')
    assert.deepEqual(
      listed.map((s) => [s.subscriptionId, s.customerId, s.plan.slug, s.isAdministrator]),
      [[created.id, id, 'free', true]],
    )
    assert.deepEqual(await planship.listSubscriptions(id, 'other-product'), [])
    const fetched = await planship.getSubscription(id, created.id)
    assert.equal(fetched.subscriptionId, created.id)

    const changed = await planship.changeSubscriptionPlan(id, created.id, 'pro')
    assert.equal(changed.plan.slug, 'pro')
    assert.equal((await planship.getEntitlements(id))['csv-export'], true)
    assert.equal(await statusOf(planship.changeSubscriptionPlan(id, created.id, 'enterprise')), 404)
    assert.equal(await statusOf(planship.getSubscription(id, '00000000-0000-4000-8000-000000000000')), 404)
    assert.equal(await statusOf(planship.getSubscription(id, 'not-a-uuid')), 422)
  })

  it('deactivates a subscription through PATCH is_active, which removes its entitlements', async () => {
    const planship = sdk(emu)
    const [subscription] = await planship.listSubscriptions('pro-customer')
    const response = await raw(
      emu,
      'PATCH',
      `/api/v1/customers/pro-customer/subscriptions/${subscription?.subscriptionId}`,
      {
        token: await getToken(emu),
        body: { is_active: false },
      },
    )
    assert.equal(response.status, 200)
    assert.equal((response.body as { is_active: boolean }).is_active, false)
    assert.equal((await planship.getEntitlements('pro-customer'))['csv-export'], false)
  })

  it('ends a subscription without auto-renew at renew_at', async () => {
    const planship = sdk(emu)
    const [subscription] = await planship.listSubscriptions('pro-customer')
    await planship.setSubscriptionAutoRenew('pro-customer', subscription?.subscriptionId as string, false)
    emu.advanceClock(32 * 86_400_000)
    const [ended] = await planship.listSubscriptions('pro-customer')
    assert.equal(ended?.isActive, false)
    assert.equal((await planship.getEntitlements('pro-customer'))['max-projects'], 0)
  })

  it('switches to the renew plan at the next renewal', async () => {
    const planship = sdk(emu)
    const [subscription] = await planship.listSubscriptions('pro-customer')
    const id = subscription?.subscriptionId as string
    const changed = await planship.changeSubscriptionRenewPlan('pro-customer', id, 'free')
    assert.equal(changed.plan.slug, 'pro')
    assert.equal(changed.renewPlan.slug, 'free')
    emu.advanceClock(32 * 86_400_000)
    assert.equal((await planship.getSubscription('pro-customer', id)).plan.slug, 'free')
    assert.equal((await planship.getEntitlements('pro-customer'))['api-calls'], 100)
  })

  it('answers 404 when creating a subscription for an unknown customer or plan', async () => {
    const planship = sdk(emu)
    assert.equal(await statusOf(planship.createSubscription('nobody', 'free')), 404)
    assert.equal(await statusOf(planship.createSubscription('free-customer', 'enterprise')), 404)
  })
})
