import assert from 'node:assert/strict'
import path from 'node:path'
import ts from 'typescript'

/**
 * The published declarations that `planship-meter` and `planship-meter/emulator` reach, emitted
 * in memory from tsconfig.json, as `{ file: text }`.
 */
function emitDeclarations(): Map<string, string> {
  const config = ts.getParsedCommandLineOfConfigFile('tsconfig.json', undefined, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'))
    },
  })
  assert.ok(config)
  const options = { ...config.options, emitDeclarationOnly: true, declarationMap: false, noEmit: false }
  const program = ts.createProgram({ rootNames: config.fileNames, options })
  const files = new Map<string, string>()
  program.emit(undefined, (fileName, text) => files.set(path.resolve(fileName), text))
  return files
}

/** Bare module specifiers the declarations reachable from `entries` import. */
function reachableModules(files: Map<string, string>, entries: string[]): Set<string> {
  const modules = new Set<string>()
  const seen = new Set<string>()
  const queue = [...entries]
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (seen.has(file)) continue
    seen.add(file)
    const text = files.get(file)
    assert.ok(text !== undefined, `no declarations emitted for ${file}`)
    for (const [, specifier = ''] of text.matchAll(/(?:from|import\()\s*'([^']+)'/g)) {
      if (!specifier.startsWith('.')) modules.add(specifier)
      else queue.push(path.resolve(path.dirname(file), specifier.replace(/\.js$/, '.d.ts')))
    }
  }
  return modules
}

describe('published declarations', () => {
  it('never reach @opentelemetry/api, so TypeScript apps without it type-check (skipLibCheck off)', function () {
    this.timeout(60_000) // a whole program's declaration emit
    const files = emitDeclarations()
    const dist = path.resolve('dist')
    const modules = reachableModules(files, [path.join(dist, 'index.d.ts'), path.join(dist, 'emulator/index.d.ts')])
    assert.ok(modules.has('koa'), 'the walk follows the imports') // a sanity check of the walk itself
    assert.deepEqual(
      [...modules].filter((name) => name.startsWith('@opentelemetry/')),
      [],
    )
  })
})
