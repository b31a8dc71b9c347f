/**
 * `TSX_TSCONFIG_PATH=tsconfig.test.json npx tsx examples/nestjs/server.ts`: the NestJS demo
 * against the Planship named by PLANSHIP_BASE_URL, PLANSHIP_CLIENT_ID and PLANSHIP_CLIENT_SECRET
 * (the emulator's by default), on PORT (default 3000). It prints its URL; SIGTERM/SIGINT flush
 * the usage and exit. (tsconfig.test.json turns on `experimentalDecorators` for examples/.)
 */
import { createNestApp } from './app.js'

const { app } = await createNestApp({
  productSlug: process.env['PLANSHIP_PRODUCT_SLUG'] ?? 'acme-api',
  planship: {
    baseUrl: process.env['PLANSHIP_BASE_URL'],
    clientId: process.env['PLANSHIP_CLIENT_ID'] ?? 'demo-client-id',
    clientSecret: process.env['PLANSHIP_CLIENT_SECRET'] ?? 'demo-client-secret',
  },
  logger: {},
})
app.enableShutdownHooks()
await app.listen(Number(process.env['PORT'] ?? 3000), '127.0.0.1')
console.log(`listening on ${await app.getUrl()}`)
