import assert from 'node:assert/strict'
import { closestMeteringId, editDistance, meteringIdHint } from '../../src/planship/metering-ids.js'

describe('hints for a metering id that feeds no lever', () => {
  const catalog = new Map([
    ['api-call', ['api-calls']],
    ['render', ['renders-per-minute']],
    ['get-call', ['calls-total']],
    ['post-call', ['calls-total']],
  ])

  it('measures edits case-insensitively', () => {
    assert.equal(editDistance('api-call', 'api-call'), 0)
    assert.equal(editDistance('API-Call', 'api-call'), 0)
    assert.equal(editDistance('api-cal', 'api-call'), 1)
    assert.equal(editDistance('rendre', 'render'), 2)
    assert.equal(editDistance('', 'abc'), 3)
  })

  it('suggests the nearest id only when it is near enough to be a typo', () => {
    assert.equal(closestMeteringId('apicall', catalog.keys()), 'api-call')
    assert.equal(closestMeteringId('rendr', catalog.keys()), 'render')
    assert.equal(closestMeteringId('thumbnail', catalog.keys()), undefined)
  })

  it('names every id feeding a lever whose slug was given', () => {
    assert.equal(
      meteringIdHint('calls-total', catalog),
      `"calls-total" is a lever's slug; its metering ids are "get-call", "post-call".`,
    )
  })

  it('lists the ids when none is close, and says when the product has none', () => {
    assert.equal(
      meteringIdHint('thumbnail', catalog),
      `The product's metering ids: "api-call", "render", "get-call", "post-call".`,
    )
    assert.equal(meteringIdHint('thumbnail', new Map()), 'The product has no metered lever.')
  })
})
