/** `tsx bench/profile-summary.ts <file.cpuprofile>`: self time by function, the top 25. */
import { readFileSync } from 'node:fs'

interface Node {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
}
const profile = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as { nodes: Node[]; samples: number[] }
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const self = new Map<string, number>()
for (const id of profile.samples) {
  const frame = byId.get(id)?.callFrame
  const name = `${frame?.functionName || '(anonymous)'} ${frame?.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench)\//, '$1/')}:${frame?.lineNumber}`
  self.set(name, (self.get(name) ?? 0) + 1)
}
const total = profile.samples.length
for (const [name, count] of [...self].sort((x, y) => y[1] - x[1]).slice(0, 25)) {
  console.log(`${((count * 100) / total).toFixed(1).padStart(5)}%  ${name}`)
}
