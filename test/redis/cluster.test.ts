import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { Cluster, Redis } from 'ioredis'
import request from 'supertest'
import { createMeter } from '../../src/index.js'
import { tagOf } from '../../src/redis/keys.js'
import { RedisUsageStore } from '../../src/redis/index.js'
import { type Harness, startHarness } from '../helpers/harness.js'
import { meteredApp, OwnRedis } from './support.js'

const run = promisify(execFile)

describe('RedisUsageStore on a 3-master Redis Cluster', function () {
  this.timeout(30_000)
  const nodes: OwnRedis[] = []
  let cluster: Cluster
  let h: Harness

  before(async () => {
    for (let i = 0; i < 3; i++) {
      const node = await OwnRedis.start(['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'])
      nodes.push(node)
    }
    await run('redis-cli', [
      '--cluster',
      'create',
      ...nodes.map((node) => `127.0.0.1:${node.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ])
    // Every node must agree the cluster is up, or the first commands meet CLUSTERDOWN retries.
    for (const node of nodes) {
      const probe = new Redis(node.port, '127.0.0.1')
      for (let i = 0; i < 100 && !(await probe.cluster('INFO')).includes('cluster_state:ok'); i++) await sleep(100)
      probe.disconnect()
    }
    cluster = new Cluster(
      nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
      { enableOfflineQueue: false, redisOptions: { autoResendUnfulfilledCommands: false } },
    )
    await new Promise((resolve) => cluster.once('ready', resolve))
    await Promise.all(cluster.nodes('master').map((node) => node.ping()))
    h = await startHarness()
  })

  after(async () => {
    await h?.close()
    cluster?.disconnect()
    for (const node of nodes) await node.close()
  })

  it('keeps each customer in one slot, spread over the masters, and two meters admit exactly the allowance', async () => {
    const keyPrefix = 'planship-meter:'
    const meters = [0, 1].map(() =>
      createMeter({ ...h.options, store: new RedisUsageStore({ client: cluster, keyPrefix, commandTimeoutMs: 500 }) }),
    )
    const callbacks = meters.map((meter) => meteredApp(meter))
    const customers = ['free-customer', ...Array.from({ length: 8 }, (_, i) => `cluster-${i}`)]
    for (const id of customers.slice(1)) h.emu.createCustomer(id, 'free')
    const statuses = await Promise.all(
      customers.flatMap((customerId) =>
        Array.from({ length: 110 }, async (_, i) => {
          const response = await request(callbacks[i % 2]!)
            .post('/')
            .set('x-customer-id', customerId)
          return response.status
        }),
      ),
    )
    assert.equal(statuses.filter((status) => status === 200).length, 100 * customers.length, h.logger.lines.join('\n'))
    await meters[0]!.flush()
    for (const customerId of customers) assert.equal(h.emu.recordedUsage({ customerId }), 100, customerId)
    // The customers' state keys live on more than one master: the layout is really spread.
    const slots = await Promise.all(customers.map((id) => cluster.cluster('KEYSLOT', `${keyPrefix}{${tagOf(id)}}:u`)))
    const owners = new Set(slots.map((slot) => Math.floor(Number(slot) / (16384 / 3))))
    assert.ok(owners.size > 1, `all customers on one master: slots ${slots.join()}`)
    for (const meter of meters) await meter.close()
  })
})
