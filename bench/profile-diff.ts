/**
 * `tsx bench/profile-diff.ts <a.cpuprofile> <b.cpuprofile> <requests> [--top N]`: self time by
 * function in µs per request in each profile, and b − a, the largest differences first: where a
 * mode's extra cost goes (profiles of the same number of requests, from bench/pipeline.ts).
 */
import { readFileSync } from 'node:fs'

interface Node {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
}
interface Profile {
  nodes: Node[]
  samples: number[]
  timeDeltas: number[]
}
const [fileA, fileB, requestsArg, , topArg] = process.argv.slice(2)
const requests = Number(requestsArg)
const top = Number(topArg ?? 40)

function selfTime(file: string): Map<string, number> {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const nameOf = new Map(
    profile.nodes.map((node) => {
      const { functionName, url, lineNumber } = node.callFrame
      const where = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench)\//, '$1/')
      return [node.id, `${functionName || '(anonymous)'} ${where}:${lineNumber}`]
    }),
  )
  const times = new Map<string, number>()
  profile.samples.forEach((id, i) => {
    const name = nameOf.get(id)!
    times.set(name, (times.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0) / requests)
  })
  return times
}
const a = selfTime(fileA!)
const b = selfTime(fileB!)
const sum = (m: Map<string, number>) => [...m.values()].reduce((x, y) => x + y, 0)
console.log(`total µs/req: a ${sum(a).toFixed(2)}  b ${sum(b).toFixed(2)}  b − a ${(sum(b) - sum(a)).toFixed(2)}`)
const names = new Set([...a.keys(), ...b.keys()])
const rows = [...names].map((name) => ({ name, a: a.get(name) ?? 0, b: b.get(name) ?? 0 }))
rows.sort((x, y) => Math.abs(y.b - y.a) - Math.abs(x.b - x.a))
for (const row of rows.slice(0, top))
  console.log(
    `${(row.b - row.a).toFixed(3).padStart(8)}  ${row.a.toFixed(3).padStart(7)} ${row.b.toFixed(3).padStart(7)}  ${row.name}`,
  )
