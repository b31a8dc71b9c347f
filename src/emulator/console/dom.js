/* global document */
// Small DOM and formatting helpers shared by the console's modules.

const numberFormat = new Intl.NumberFormat('en-US')

export const $ = (id) => document.getElementById(id)

/** A DOM element: `el('div', { class: 'x', text: 'hi', 'data-k': 'v' }, child…)`. Values are set as text, never as markup. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue
    if (key === 'class') node.className = value
    else if (key === 'text') node.textContent = value
    else node.setAttribute(key, String(value))
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child)
  return node
}

export const formatNumber = (n) => numberFormat.format(n)

/** `2026-11-27T23:40:12.345Z` → `2026-11-27 23:40:12 UTC`. */
export function formatDateTime(iso) {
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`
}

export function formatDuration(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`
  if (seconds % 3600 === 0) return `${seconds / 3600} h`
  if (seconds % 60 === 0 && seconds >= 120) return `${seconds / 60} min`
  return `${seconds} s`
}
