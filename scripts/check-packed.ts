/**
 * The package as users install it (`npm run test:packed`, run by .ci/run after `npm test`):
 * packs it, installs the tarball into scratch apps in a temporary directory (Express and
 * Fastify without Koa, Koa, Hono on @hono/node-server without Koa or Express, a worker on
 * `planship-meter/core`), and for each checks which packages got installed, type-checks the
 * app (its README snippet) with `tsc --strict` and `skipLibCheck: false`, and runs it against
 * the emulator the Koa app starts from its own install. Versions are pinned to package-lock.json. `KEEP=1` keeps the directory.
 */
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { readmeSnippets, runSnippet, snippetFileName, userCompilerOptions } from '../test/docs/snippets.js'

const root = fileURLToPath(new URL('../', import.meta.url))
const run = promisify(execFile)
const started = performance.now()
const lock = JSON.parse(readFileSync(`${root}package-lock.json`, 'utf8')) as {
  packages: Record<string, { version?: string }>
}
const manifest = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as {
  version: string
  dependencies: Record<string, string>
}
const pinned = (name: string) => {
  const version = lock.packages[`node_modules/${name}`]?.version
  assert.ok(version, `${name} is not in package-lock.json`)
  return `${name}@${version}`
}

interface App {
  name: string
  /** The README snippet that is the app's code. */
  snippet: string
  /** What the app installs besides planship-meter (and @types/node). */
  packages: string[]
  /** Packages that must not be installed. */
  forbidden: RegExp
}

const apps: App[] = [
  {
    name: 'express',
    snippet: 'Express',
    packages: ['express', '@types/express'],
    forbidden: /^(koa|@koa\/.*|@types\/koa.*|@opentelemetry\/api)$/,
  },
  {
    name: 'fastify',
    snippet: 'Fastify',
    packages: ['fastify'],
    forbidden: /^(koa|@koa\/.*|@types\/koa.*|express|@types\/express.*|@opentelemetry\/api)$/,
  },
  {
    name: 'koa',
    snippet: 'Quick start',
    packages: ['koa', '@koa/router', '@types/koa'],
    forbidden: /^@opentelemetry\/api$/,
  },
  {
    name: 'hono',
    snippet: 'Hono',
    packages: ['hono', '@hono/node-server'],
    forbidden: /^(koa|@koa\/.*|@types\/koa.*|express|@types\/express.*|@opentelemetry\/api)$/,
  },
  {
    name: 'worker',
    snippet: 'Metering outside HTTP',
    packages: [],
    forbidden: /^(koa|@koa\/.*|@types\/koa.*|express|@types\/express.*|@opentelemetry\/api)$/,
  },
]

/** Bare modules each entry's published declarations may import (besides `node:*`). */
const declarationImports: Record<string, string[]> = {
  'index.d.ts': ['koa'],
  'core/index.d.ts': [],
  'express/index.d.ts': ['express', 'express-serve-static-core'],
  'fastify/index.d.ts': ['fastify'],
  'hono/index.d.ts': ['hono'],
  'emulator/index.d.ts': [],
  'redis/index.d.ts': ['ioredis'],
}

function log(message: string): void {
  console.log(`[packed +${((performance.now() - started) / 1000).toFixed(1)}s] ${message}`)
}

async function npm(cwd: string, ...args: string[]): Promise<string> {
  const { stdout, stderr } = await run('npm', [...args, '--no-audit', '--no-fund'], { cwd, maxBuffer: 16 << 20 })
  return stdout + stderr
}

/** Every package under `node_modules` (nested ones included), by name. */
async function installed(dir: string): Promise<string[]> {
  const names: string[] = []
  const walk = async (modules: string) => {
    const entries = await readdir(modules, { withFileTypes: true }).catch(() => [])
    for (const entry of entries) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue
      if (entry.name.startsWith('@')) {
        for (const scoped of await readdir(path.join(modules, entry.name))) {
          names.push(`${entry.name}/${scoped}`)
          await walk(path.join(modules, entry.name, scoped, 'node_modules'))
        }
      } else {
        names.push(entry.name)
        await walk(path.join(modules, entry.name, 'node_modules'))
      }
    }
  }
  await walk(path.join(dir, 'node_modules'))
  return names
}

async function megabytes(dir: string): Promise<number> {
  const { stdout } = await run('du', ['-sk', path.join(dir, 'node_modules')])
  return Number(stdout.split('\t')[0]) / 1024
}

/** An `npm init -y` app with `"type": "module"`, its packages installed; returns npm's output. */
async function createApp(dir: string, packages: string[]): Promise<string> {
  await mkdir(dir, { recursive: true })
  await npm(dir, 'init', '-y')
  await npm(dir, 'pkg', 'set', 'type=module')
  // planship-meter's own dependencies at the versions of its lock file, as the suite ran them.
  const overrides = Object.fromEntries(
    Object.keys(manifest.dependencies).map((name) => [name, pinned(name).split('@').at(-1)]),
  )
  const app = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as Record<string, unknown>
  await writeFile(path.join(dir, 'package.json'), JSON.stringify({ ...app, overrides }, null, 2))
  return npm(dir, 'install', '--prefer-offline', ...packages)
}

/** The bare modules the declarations reachable from `entry` import. */
async function declarationModules(dist: string, entry: string): Promise<Set<string>> {
  const modules = new Set<string>()
  const seen = new Set<string>()
  const queue = [path.join(dist, entry)]
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (seen.has(file)) continue
    seen.add(file)
    const text = await readFile(file, 'utf8')
    for (const [, specifier = ''] of text.matchAll(/(?:from|import\()\s*['"]([^'"]+)['"]/g)) {
      if (specifier.startsWith('.')) queue.push(path.resolve(path.dirname(file), specifier.replace(/\.js$/, '.d.ts')))
      else if (!specifier.startsWith('node:')) modules.add(specifier)
    }
  }
  return modules
}

/** Starts the emulator's CLI from `cwd`'s install; resolves its URL and a stop function. */
async function startEmulatorCli(cwd: string): Promise<{ url: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['node_modules/planship-meter/bin/planship-emulator.js', '--port', '0'], {
    cwd,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = once(child, 'exit')
  let output = ''
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk
      const listening = /listening on (http:\/\/\S+)/.exec(output)?.[1]
      if (listening !== undefined) resolve(listening)
    })
    void exited.then(() => reject(new Error(`the emulator CLI exited: ${output}`)))
  })
  return {
    url,
    stop: async () => {
      child.kill('SIGINT')
      await exited
    },
  }
}

/** `Promise.all` that waits for every promise before rejecting, so no install still writes when the directory is removed. */
async function settledAll<T>(promises: Array<Promise<T>>): Promise<T[]> {
  const results = await Promise.allSettled(promises)
  const failed = results.find((result) => result.status === 'rejected')
  if (failed !== undefined) throw failed.reason
  return results.map((result) => (result as PromiseFulfilledResult<T>).value)
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'planship-meter-packed-'))
  log(`in ${dir}`)
  try {
    // npm pack runs prepack: a build, as for publishing.
    const packOutput = await npm(root, 'pack', '--pack-destination', dir)
    const tarball = path.join(dir, `planship-meter-${manifest.version}.tgz`)
    log(`packed ${path.basename(tarball)}`)
    assert.doesNotMatch(packOutput, /npm (warn|error)/i, packOutput)

    const snippets = readmeSnippets(await readFile(`${root}README.md`, 'utf8'))
    const measured = await settledAll(
      apps.map(async (app) => {
        const appDir = path.join(dir, app.name)
        const packages = [...app.packages, '@types/node'].map(pinned)
        // The same app without planship-meter, for what the package itself adds.
        await createApp(path.join(dir, `${app.name}-alone`), packages)
        const output = await createApp(appDir, [tarball, ...packages])
        // npm 11 lists packages with install scripts awaiting approval: planship-meter has none.
        assert.doesNotMatch(output, /install-scripts[\s\S]*planship-meter/, output)
        const names = await installed(appDir)
        const forbidden = names.filter((name) => app.forbidden.test(name))
        assert.deepEqual(forbidden, [], `${app.name} app: installed ${forbidden.join(', ')}`)
        const alone = await installed(path.join(dir, `${app.name}-alone`))
        const snippet = snippets.find((candidate) => candidate.key === app.snippet && !candidate.fragment)
        assert.ok(snippet, `README has no "${app.snippet}" snippet`)
        const file = snippetFileName(snippet)
        await writeFile(path.join(appDir, file), snippet.code)
        await writeFile(
          path.join(appDir, 'tsconfig.json'),
          JSON.stringify({
            compilerOptions: { ...userCompilerOptions, outDir: 'out' },
            files: [file],
          }),
        )
        await run(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', appDir]).catch(
          (error: { stdout?: string }) => assert.fail(`${app.name} app: tsc:\n${error.stdout ?? String(error)}`),
        )
        return {
          app,
          file: file.replace(/\.mts$/, '.mjs'),
          packages: names.length,
          megabytes: await megabytes(appDir),
          alone: { packages: alone.length, megabytes: await megabytes(path.join(dir, `${app.name}-alone`)) },
        }
      }),
    )
    log(`installed and type-checked (strict, skipLibCheck false) the ${apps.map((app) => app.name).join(', ')} apps`)
    console.table(
      measured.map((m) => ({
        app: m.app.name,
        packages: m.packages,
        MB: m.megabytes.toFixed(1),
        'without planship-meter': `${m.alone.packages} packages, ${m.alone.megabytes.toFixed(1)} MB`,
      })),
    )

    const dist = path.join(dir, 'koa', 'node_modules', 'planship-meter', 'dist')
    for (const [entry, allowed] of Object.entries(declarationImports)) {
      const modules = [...(await declarationModules(dist, entry))].filter((name) => !allowed.includes(name))
      assert.deepEqual(modules, [], `dist/${entry} reaches declarations of ${modules.join(', ')}`)
    }

    // Without Koa, the emulator says what to install.
    const refused = await run(process.execPath, ['node_modules/planship-meter/bin/planship-emulator.js'], {
      cwd: path.join(dir, 'express'),
    }).then(
      () => assert.fail('the emulator started in the Express app, which has no Koa'),
      (error: { code?: number; stderr?: string }) => error,
    )
    assert.equal(refused.code, 1)
    assert.match(refused.stderr ?? '', /install koa and @koa\/router/)

    const emulator = await startEmulatorCli(path.join(dir, 'koa'))
    try {
      for (const m of measured) {
        const cwd = path.join(dir, m.app.name)
        await runSnippet(
          { key: m.app.snippet, command: [process.execPath, path.join('out', m.file)], cwd },
          emulator.url,
        )
        log(`${m.app.name} app: ran its README snippet against the emulator`)
      }
    } finally {
      await emulator.stop()
    }
    log('ok')
  } finally {
    if (process.env['KEEP'] === undefined) await rm(dir, { recursive: true, force: true })
  }
}

await main()
