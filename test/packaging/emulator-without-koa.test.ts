import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const root = fileURLToPath(new URL('../../', import.meta.url))
const hideKoa = fileURLToPath(new URL('fixtures/hide-koa.mjs', import.meta.url))

/** Runs `code` in a Node process where koa and @koa/router cannot be resolved. */
function withoutKoa(code: string) {
  return promisify(execFile)(
    process.execPath,
    ['--import', hideKoa, '--import', 'tsx', '--input-type=module', '-e', code],
    {
      cwd: root,
    },
  )
}

describe('the emulator without koa and @koa/router installed', () => {
  it('imports, and startEmulator() rejects with an error naming the packages to install', async function () {
    this.timeout(20_000)
    const { stdout } = await withoutKoa(`
      const { startEmulator, defaultFixture } = await import('./src/emulator/index.ts')
      console.log(typeof defaultFixture)
      await startEmulator().then(() => console.log('started'), (error) => console.log(error.message))
    `)
    assert.equal(
      stdout,
      'object\nplanship-meter/emulator runs on Koa: install koa and @koa/router to start it ' +
        '(npm install --save-dev koa @koa/router); koa is not installed\n',
    )
  })

  it('the Express and worker entries load and meter without them', async function () {
    this.timeout(20_000)
    const { stdout } = await withoutKoa(`
      const express = await import('./src/express/index.ts')
      const core = await import('./src/core/index.ts')
      const options = { productSlug: 'acme-api', planship: { clientId: 'id', clientSecret: 'secret' } }
      console.log(typeof express.createMeter(options).consume, typeof core.createMeter(options).reserve)
    `)
    assert.equal(stdout, 'function function\n')
  })
})
