/**
 * `tsx bench/profile-summary.ts <file.cpuprofile> [--inclusive] [--top N] [--match text]`: self
 * time by function, the top 25 (`--match src/`: of the functions whose name or file has it); `--inclusive` adds each function's total time (itself and what it called, a
 * sample counted once however deep the recursion), which tells what a hook costs with
 * everything it does, and a line of self time by area (the framework, Node, our modules).
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface Node {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { inclusive: { type: 'boolean', default: false }, top: { type: 'string' }, match: { type: 'string' } },
})
const top = Number(values.top ?? 25)
const profile = JSON.parse(readFileSync(positionals[0] ?? '', 'utf8')) as { nodes: Node[]; samples: number[] }
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const parentOf = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id)

const nameOf = (frame: Node['callFrame'] | undefined) =>
  `${frame?.functionName || '(anonymous)'} ${frame?.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench)\//, '$1/')}:${frame?.lineNumber}`

/** Where a function lives: a package, Node itself, or one of our folders. */
function areaOf(frame: Node['callFrame'] | undefined): string {
  const url = frame?.url ?? ''
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg !== null) return pkg[1]!
  const ours = /\/(src|bench)\/([^/]+)\//.exec(url)
  if (ours !== null) return `${ours[1]}/${ours[2]}`
  if (url.startsWith('node:')) return 'node'
  return frame?.functionName.startsWith('(') === true ? frame.functionName : 'native'
}

const self = new Map<string, number>()
const inclusive = new Map<string, number>()
const areas = new Map<string, number>()
const add = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1)
for (const id of profile.samples) {
  const frame = byId.get(id)?.callFrame
  add(self, nameOf(frame))
  add(areas, areaOf(frame))
  if (!values.inclusive) continue
  const seen = new Set<string>()
  for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
    const name = nameOf(byId.get(at)?.callFrame)
    if (!seen.has(name)) add(inclusive, name)
    seen.add(name)
  }
}
const total = profile.samples.length
const pct = (count: number) => `${((count * 100) / total).toFixed(1).padStart(5)}%`
/** `--match src/`: only the functions whose name or file contains it. */
const match = values.match ?? ''
const sorted = (map: Map<string, number>) =>
  [...map]
    .filter(([name]) => name.includes(match))
    .sort((x, y) => y[1] - x[1])
    .slice(0, top)
console.log('self time')
for (const [name, count] of sorted(self)) console.log(`${pct(count)}  ${name}`)
if (values.inclusive) {
  console.log('\ntotal time (self and callees)')
  for (const [name, count] of sorted(inclusive)) console.log(`${pct(count)}  ${name}`)
  console.log('\nself time by area')
  console.log(
    [...areas]
      .sort((x, y) => y[1] - x[1])
      .map(([area, count]) => `${area} ${pct(count).trim()}`)
      .join(', '),
  )
}
