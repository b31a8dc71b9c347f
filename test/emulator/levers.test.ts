import assert from 'node:assert/strict'
import { startEmulator, type Emulator, type Fixture } from '../../src/emulator/index.js'
import { sdk } from './support.js'

/** Every kind of lever the fixture format supports, on one product. */
const fixture: Fixture = {
  products: [
    {
      slug: 'studio',
      name: 'Studio',
      levers: [
        { slug: 'exports-per-project', type: 'metered', meteringIds: ['export'], formula: 'per-bucket' },
        { slug: 'exports-ever', type: 'metered', meteringIds: ['export'], period: 'all-time' },
        { slug: 'active-users', type: 'metered', meteringIds: ['login'], formula: 'unique-buckets' },
        { slug: 'team-calls', type: 'metered', meteringIds: ['call'] },
        { slug: 'my-calls', type: 'metered', meteringIds: ['call'], scope: 'customer' },
        { slug: 'all-calls', type: 'metered', meteringIds: ['call', 'export'], default: 1000 },
        { slug: 'integrations', type: 'list' },
        { slug: 'support', type: 'enum', values: ['email', 'chat', 'phone'], default: 'email' },
      ],
      plans: [
        {
          slug: 'team',
          entitlements: {
            'exports-per-project': 2,
            'exports-ever': 100,
            'active-users': 3,
            'team-calls': 10,
            'my-calls': 4,
            integrations: ['slack'],
            support: 'chat',
          },
        },
        {
          slug: 'unlimited',
          durationUnit: 'perpetual',
          entitlements: {
            'exports-per-project': -1,
            'exports-ever': -1,
            'active-users': -1,
            'team-calls': -1,
            'my-calls': -1,
            integrations: ['github'],
            support: 'phone',
          },
        },
      ],
    },
  ],
  customers: [
    { alternativeId: 'owner', subscriptions: [{ product: 'studio', plan: 'team' }] },
    { alternativeId: 'member' },
  ],
}

describe('emulator lever kinds (custom fixture)', () => {
  let emu: Emulator

  before(async () => {
    emu = await startEmulator({ fixture })
  })
  after(async () => {
    await emu.close()
  })
  beforeEach(() => emu.reset())

  it('answers every lever kind, defaults included', async () => {
    assert.equal(emu.productSlug, 'studio')
    assert.equal(emu.clientId, 'demo-client-id')
    assert.deepEqual(await sdk(emu).getEntitlements('owner'), {
      'exports-per-project': { null: 2 },
      'exports-ever': 100,
      'active-users': 3,
      'team-calls': 10,
      'my-calls': 4,
      'all-calls': 1000,
      integrations: ['slack'],
      support: 'chat',
    })
  })

  it('limits a per-bucket lever per bucket and reports usage by bucket', async () => {
    const planship = sdk(emu)
    await planship.reportUsage('owner', 'export', 1, 'project A')
    await planship.reportUsage('owner', 'export', 2, 'project A')
    await planship.reportUsage('owner', 'export', 1, 'project B')
    await planship.reportUsage('owner', 'export', 1)
    const entitlements = await planship.getEntitlements('owner')
    assert.deepEqual(entitlements['exports-per-project'], { null: 1, 'project A': 0, 'project B': 1 })
    // The same metering id also feeds an all-time total lever and a two-metering-id lever.
    assert.equal(entitlements['exports-ever'], 95)
    assert.equal(entitlements['all-calls'], 995)

    const [subscription] = await planship.listSubscriptions('owner')
    const usage = await planship.getLeverUsage('owner', 'exports-per-project')
    assert.equal(usage.total, 5)
    assert.deepEqual(usage.byBucket, { 'project A': 3, 'project B': 1, null: 1 })
    assert.deepEqual(usage.bySubscription, {
      [subscription?.subscriptionId as string]: [
        { usage: 3, bucket: 'project A' },
        { usage: 1, bucket: 'project B' },
        { usage: 1, bucket: null },
      ],
    })
    assert.deepEqual(Object.keys(await planship.getMeteringIdUsage('owner', 'export')).sort(), [
      'all-calls',
      'exports-ever',
      'exports-per-project',
    ])
  })

  it('counts distinct buckets for a unique-buckets lever', async () => {
    const planship = sdk(emu)
    for (const user of ['ann', 'bob', 'ann', 'ann']) await planship.reportUsage('owner', 'login', 1, user)
    await planship.reportUsage('owner', 'login', 1)
    assert.equal((await planship.getEntitlements('owner'))['active-users'], 1)
    const usage = await planship.getLeverUsage('owner', 'active-users')
    assert.equal(usage.total, 2)
    assert.deepEqual(usage.byBucket, { ann: 3, bob: 1, null: 1 })
  })

  it('shares subscription-scoped usage in a team and keeps customer-scoped usage per member', async () => {
    const planship = sdk(emu)
    const [subscription] = await planship.listSubscriptions('owner')
    const subscriptionId = subscription?.subscriptionId as string
    await planship.changeSubscriptionMaxSubscribers('owner', subscriptionId, 2)
    const added = await planship.addSubscriptionCustomer('owner', subscriptionId, 'member')
    assert.equal(added.subscriptionId, subscriptionId)
    assert.equal((await planship.listSubscriptionCustomers('owner', subscriptionId)).length, 2)

    await planship.reportUsage('member', 'call', 3)
    const member = await planship.getEntitlements('member')
    const owner = await planship.getEntitlements('owner')
    assert.equal(member['team-calls'], 7)
    assert.equal(owner['team-calls'], 7)
    assert.equal(member['my-calls'], 1)
    assert.equal(owner['my-calls'], 4)

    await planship.removeSubscriptionCustomer('owner', subscriptionId, 'member')
    assert.equal((await planship.getEntitlements('member'))['team-calls'], 0)
  })

  it('refuses a team member beyond max_subscribers', async () => {
    const planship = sdk(emu)
    const [subscription] = await planship.listSubscriptions('owner')
    await assert.rejects(
      planship.addSubscriptionCustomer('owner', subscription?.subscriptionId as string, 'member'),
      (error: { response?: Response }) => error.response?.status === 409,
    )
  })

  it('merges several subscriptions most-permissively: -1, unions of lists, the later enum value', async () => {
    const planship = sdk(emu)
    const perpetual = await planship.createSubscription('owner', 'unlimited')
    assert.equal(perpetual.plan.slug, 'unlimited')
    await planship.reportUsage('owner', 'export', 50, 'p')
    const entitlements = await planship.getEntitlements('owner')
    assert.deepEqual(entitlements['exports-per-project'], { null: -1, p: -1 })
    assert.equal(entitlements['exports-ever'], -1)
    assert.equal(entitlements['team-calls'], -1)
    assert.deepEqual(entitlements.integrations, ['slack', 'github'])
    assert.equal(entitlements.support, 'phone')
  })

  it('never renews a perpetual plan', async () => {
    const planship = sdk(emu)
    await planship.createSubscription('member', 'unlimited')
    emu.advanceClock(5 * 365 * 86_400_000)
    const [subscription] = await planship.listSubscriptions('member')
    assert.equal(subscription?.isActive, true)
    assert.equal((await planship.getEntitlements('member'))['team-calls'], -1)
  })
})
