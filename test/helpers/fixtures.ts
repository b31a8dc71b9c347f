import type { Fixture } from '../../src/emulator/index.js'

/** A product whose metering ids feed per-bucket, shared and zero-allowance levers. */
export const leversFixture: Fixture = {
  credentials: [{ clientId: 'levers-id', clientSecret: 'levers-secret' }],
  products: [
    {
      slug: 'levers-api',
      levers: [
        {
          slug: 'exports-per-project',
          type: 'metered',
          meteringIds: ['export'],
          formula: 'per-bucket',
          period: 'all-time',
        },
        { slug: 'calls-total', type: 'metered', meteringIds: ['get-call', 'post-call'], period: 'all-time' },
        { slug: 'gpu-minutes', type: 'metered', meteringIds: ['gpu'], period: 'all-time' },
      ],
      plans: [{ slug: 'basic', entitlements: { 'exports-per-project': 3, 'calls-total': 4, 'gpu-minutes': 0 } }],
    },
  ],
  customers: [{ alternativeId: 'lever-customer', subscriptions: [{ product: 'levers-api', plan: 'basic' }] }],
}
