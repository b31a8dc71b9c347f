import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { type Emulator, startEmulator } from '../../src/emulator/index.js'
import {
  drivers,
  FRAGMENT_MARKER,
  readmeSnippets,
  runSnippet,
  snippetFileName,
  userCompilerOptions,
} from './snippets.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const snippets = readmeSnippets(readFileSync(`${root}README.md`, 'utf8'))
const files = snippets.filter((snippet) => !snippet.fragment)
const dir = `${root}node_modules/.cache/planship-meter/readme/`

/**
 * The snippet as a file under `dir`: in `check/` as it is, in `run/` with `planship-meter` and
 * its subpaths resolved to this checkout's `src/` (for tsx).
 */
const fileOf = (snippet: { key: string }, under: 'check' | 'run') => `${dir}${under}/${snippetFileName(snippet)}`
const toSource = (code: string) =>
  code.replace(
    /from 'planship-meter(?:\/([\w-]+))?'/g,
    (_, entry?: string) => `from '${root}src/${entry ?? '.'}/index.ts'`,
  )

const tsc = (...args: string[]) =>
  promisify(execFile)(process.execPath, [`${root}node_modules/typescript/bin/tsc`, ...args]).catch(
    (error: { stdout?: string }) => assert.fail(`tsc ${args.join(' ')}:\n${error.stdout ?? String(error)}`),
  )

describe('README snippets: every ```ts block is a whole file that type-checks and runs', () => {
  let emu: Emulator
  before(async () => {
    await rm(dir, { recursive: true, force: true })
    await mkdir(`${dir}check`, { recursive: true })
    await mkdir(`${dir}run`, { recursive: true })
    for (const snippet of files) {
      await writeFile(fileOf(snippet, 'check'), snippet.code)
      await writeFile(fileOf(snippet, 'run'), toSource(snippet.code))
    }
    emu = await startEmulator()
  })
  after(() => emu?.close())

  it('leaves out only a block marked as a fragment on the line before it', () => {
    const markdown = [
      '## A',
      '```ts',
      'run()',
      '```',
      '',
      FRAGMENT_MARKER,
      '',
      '```ts',
      'part',
      '```',
      '```sh',
      'ls',
      '```',
    ]
    const found = readmeSnippets(markdown.join('\n'))
    assert.deepEqual(
      found.map(({ key, fragment, code }) => ({ key, fragment, code })),
      [
        { key: 'A', fragment: false, code: 'run()\n' },
        { key: 'A #2', fragment: true, code: 'part\n' },
      ],
    )
  })

  it('has a driver only for snippets that exist', () => {
    assert.ok(files.length >= 7, `${files.length} snippets`)
    const keys = new Set(files.map((snippet) => snippet.key))
    for (const key of Object.keys(drivers)) assert.ok(keys.has(key), `a driver for "${key}", which has no ts block`)
  })

  it('type-checks under strict settings with skipLibCheck off, against the published declarations', async function () {
    this.timeout(120_000)
    // What the package publishes: the declarations of dist/, emitted here on their own.
    await tsc(
      '-p',
      `${root}tsconfig.json`,
      '--emitDeclarationOnly',
      '--declarationMap',
      'false',
      '--outDir',
      `${dir}types`,
    )
    // A user's project: strict, libraries checked too, `planship-meter` resolved to those declarations.
    await writeFile(
      `${dir}check/tsconfig.json`,
      JSON.stringify({
        compilerOptions: {
          ...userCompilerOptions,
          noEmit: true,
          paths: { 'planship-meter': ['../types/index.d.ts'], 'planship-meter/*': ['../types/*/index.d.ts'] },
        },
        files: files.map((snippet) => fileOf(snippet, 'check')),
      }),
    )
    await tsc('-p', `${dir}check/tsconfig.json`)
  })

  for (const snippet of files) {
    it(`${snippet.key} (README.md:${snippet.line}) runs against the emulator`, async function () {
      this.timeout(40_000)
      await runSnippet(
        { key: snippet.key, command: [process.execPath, '--import', 'tsx', fileOf(snippet, 'run')] },
        emu.url,
      )
    })
  }
})
