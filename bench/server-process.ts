/** One server under test, in its own process (argv: framework, mode, target JSON), answering IPC from run.ts. */
import { createServer as createHttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { writeHeapSnapshot } from 'node:v8'
import { createServer, type Framework, type Mode, type PlanshipTarget } from './servers/index.js'

const [framework, mode, target] = [
  process.argv[2] as Framework,
  process.argv[3] as Mode,
  JSON.parse(process.argv[4] ?? '{}') as PlanshipTarget,
]
const { handler, meter } = await createServer(framework, mode, target)
// Every framework's app served the same way: its Node request listener on a plain HTTP server.
const server = createHttpServer(handler)
server.keepAliveTimeout = 30_000
server.listen(0, '127.0.0.1', () => {
  process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port })
})

export type ServerMessage =
  { type: 'stats'; gc?: boolean } | { type: 'close' } | { type: 'heap-snapshot' } | { type: 'deliver' }

process.on('message', async (message: ServerMessage) => {
  if (message.type === 'close') {
    server.close()
    server.closeAllConnections()
    await meter?.close()
    process.disconnect()
    return
  }
  if (message.type === 'deliver') {
    // Everything pending sent (the memory phase's backlog), whatever the report budget.
    const { reports } = (await meter?.flush()) ?? { reports: 0 }
    process.send?.({ type: 'deliver', reports })
    return
  }
  if (message.type === 'heap-snapshot') {
    process.send?.({ type: 'heap-snapshot', file: writeHeapSnapshot() })
    return
  }
  const cpu = process.cpuUsage()
  if (message.gc === true) global.gc?.()
  const memory = process.memoryUsage()
  process.send?.({
    type: 'stats',
    cpuUs: cpu.user + cpu.system,
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    heapTotal: memory.heapTotal,
    external: memory.external,
  })
})
