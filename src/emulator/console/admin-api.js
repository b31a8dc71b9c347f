/* global fetch */
// The emulator's admin routes, as the console calls them.

/** Calls an admin route; rejects with the emulator's own message (`{"detail": …}`) on an error status. */
export async function admin(method, path, body) {
  const init = { method, headers: {} }
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  const response = await fetch(`/_emulator/${path}`, init)
  const text = await response.text()
  let data
  try {
    data = text === '' ? undefined : JSON.parse(text)
  } catch {
    data = undefined
  }
  if (!response.ok) throw new Error(describeError(data, response.status))
  return data
}

function describeError(data, status) {
  const detail = data && data.detail
  if (Array.isArray(detail)) return detail.map((d) => `${d.loc.slice(1).join('.')}: ${d.msg}`).join('; ')
  if (typeof detail === 'string') return detail
  return `the emulator answered ${status}`
}
