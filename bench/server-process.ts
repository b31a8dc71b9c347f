/** One server under test, in its own process (argv: mode, target JSON), answering IPC from run.ts. */
import type { AddressInfo } from 'node:net'
import { writeHeapSnapshot } from 'node:v8'
import { createServer, type Mode, type PlanshipTarget } from './servers.js'

const [mode, target] = [process.argv[2] as Mode, JSON.parse(process.argv[3] ?? '{}') as PlanshipTarget]
const { app, meter } = createServer(mode, target)
const server = app.listen(0, '127.0.0.1', () => {
  process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port })
})
server.keepAliveTimeout = 30_000

export type ServerMessage = { type: 'stats'; gc?: boolean } | { type: 'close' } | { type: 'heap-snapshot' }

process.on('message', async (message: ServerMessage) => {
  if (message.type === 'close') {
    server.close()
    server.closeAllConnections()
    await meter?.close()
    process.disconnect()
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
    calls: meter?.planshipCalls(),
  })
})
