/* global document, window */
// The customers' cards (usage against limits as bars) and the product's tables.
import { $, el, formatDuration, formatNumber } from './dom.js'

const barWidths = new Map() // bar key → last width, so bars slide from where they were

/** Forgets where bars were, after a reset. */
export function forgetBars() {
  barWidths.clear()
}

export function renderCustomers(state) {
  const list = $('customers')
  const cards = state.customers.map((customer) => customerCard(customer, state.products))
  list.replaceChildren(...(cards.length > 0 ? cards : [el('p', { class: 'muted', text: 'No customers.' })]))
  // Let the browser lay out the old widths first, so that bars slide to the new ones.
  window.requestAnimationFrame(() => {
    for (const bar of list.querySelectorAll('[data-width]')) bar.style.width = bar.dataset.width
  })
}

function customerCard(customer, products) {
  const label = customer.alternative_id ?? customer.id
  const head = el(
    'div',
    { class: 'customer-head' },
    el('h3', { text: label }),
    customer.name !== '' && customer.name !== label ? el('span', { class: 'muted', text: customer.name }) : null,
    ...customer.subscriptions.map((s) =>
      el('span', {
        class: s.is_active ? 'plan-badge' : 'plan-badge inactive',
        text: s.plan,
        title: s.is_active ? `${s.product}/${s.plan}` : `${s.product}/${s.plan} (ended)`,
      }),
    ),
    customer.subscriptions.length === 0 ? el('span', { class: 'plan-badge inactive', text: 'no plan' }) : null,
  )
  const rows = []
  for (const product of products) {
    for (const lever of customer.levers[product.slug] ?? []) {
      const definition = product.levers.find((l) => l.slug === lever.slug)
      rows.push(leverRow(customer, lever, definition))
    }
  }
  return el('article', { class: 'customer', 'data-customer': label }, head, ...rows)
}

function leverRow(customer, lever, definition) {
  const row = el('div', { class: 'lever', 'data-lever': lever.slug })
  if (lever.type !== 'metered') {
    row.append(
      el(
        'div',
        { class: 'lever-head' },
        el('span', { class: 'lever-name', text: lever.name }),
        grantedValue(lever.type, lever.granted),
      ),
    )
    return row
  }
  const limit = lever.granted
  const when = windowText(lever.window)
  if (definition.formula === 'per-bucket') {
    const each = limit === -1 ? 'unlimited' : `${formatNumber(limit)} each`
    row.append(
      el(
        'div',
        { class: 'lever-head' },
        el('span', { class: 'lever-name', text: lever.name }),
        el('span', { class: 'lever-figures muted', text: `per bucket: ${each}` }),
      ),
    )
    const buckets = lever.buckets ?? []
    if (buckets.length === 0) {
      row.append(
        el('div', { class: 'lever-sub' }, el('span', { text: 'no bucket used yet' }), el('span', { text: when })),
      )
    }
    for (const bucket of buckets) {
      const name = bucket.bucket ?? '(no bucket)'
      const key = `${customer.id}/${lever.slug}/${name}`
      row.append(
        el(
          'div',
          { class: 'bucket', 'data-bucket': name },
          usageLine(name, bucket.used, limit, bucket.remaining, when, key),
        ),
      )
    }
    return row
  }
  row.append(usageLine(lever.name, lever.used, limit, lever.remaining, when, `${customer.id}/${lever.slug}`, true))
  return row
}

/** Name, used / limit, a bar, what is left and the window the usage counts in. */
function usageLine(name, used, limit, remaining, when, key, strong = false) {
  const unlimited = limit === -1
  const figures = unlimited ? `${formatNumber(used)} used` : `${formatNumber(used)} / ${formatNumber(limit)}`
  const share = unlimited ? 0.04 : limit === 0 ? 1 : Math.min(1, used / limit)
  const level = unlimited ? 'unlimited' : share >= 0.9 ? 'bad' : share >= 0.7 ? 'warn' : ''
  const width = `${Number((share * 100).toFixed(1))}%`
  const fill = el('span', { 'data-width': width })
  fill.style.width = barWidths.get(key) ?? '0%'
  barWidths.set(key, width)
  const left = unlimited ? 'unlimited' : limit === 0 ? 'no access' : `${formatNumber(remaining)} left`
  const fragment = document.createDocumentFragment()
  fragment.append(
    el(
      'div',
      { class: 'lever-head' },
      el('span', { class: strong ? 'lever-name' : 'mono', text: name }),
      el('span', { class: 'lever-figures', text: figures }),
    ),
    el(
      'div',
      {
        class: `bar ${level}`,
        role: 'meter',
        'aria-label': `${name}: ${figures}`,
        'aria-valuemin': 0,
        'aria-valuemax': unlimited ? used : limit,
        'aria-valuenow': used,
        'data-used': used,
        'data-limit': limit,
      },
      fill,
    ),
    el('div', { class: 'lever-sub' }, el('span', { class: 'remaining', text: left }), el('span', { text: when })),
  )
  return fragment
}

function windowText(span) {
  if (span === undefined) return ''
  if (span.kind === 'rolling') return `last ${formatDuration(span.seconds)}`
  if (span.kind === 'all-time') return 'all time'
  if (span.start === null) return 'no active subscription'
  return span.end === null ? 'this period (never renews)' : `period until ${span.end.slice(0, 10)}`
}

function grantedValue(type, value) {
  if (type === 'boolean') {
    return el('span', { class: value ? 'value-yes' : 'value-no', text: value ? '✓ included' : '✗ not included' })
  }
  if (type === 'integer')
    return el('span', { class: 'lever-figures', text: value === -1 ? 'unlimited' : formatNumber(value) })
  if (Array.isArray(value)) return el('span', { text: value.length === 0 ? '—' : value.join(', ') })
  return el('span', { text: String(value) })
}

function planValueText(lever, value) {
  if (typeof value === 'boolean') return value ? '✓' : '✗'
  if (Array.isArray(value)) return value.length === 0 ? '—' : value.join(', ')
  if (typeof value !== 'number') return String(value)
  if (value === -1) return 'unlimited'
  let text = formatNumber(value)
  if (lever.formula === 'per-bucket') text += ' per bucket'
  if (typeof lever.period === 'object') text += ` / ${formatDuration(lever.period.windowSeconds)}`
  return text
}

function periodText(lever) {
  if (lever.type !== 'metered') return ''
  if (typeof lever.period === 'object') return `rolling ${formatDuration(lever.period.windowSeconds)}`
  return lever.period === 'all-time' ? 'all time' : 'subscription period'
}

function table(headers, rows) {
  return el(
    'div',
    { class: 'table-wrap' },
    el(
      'table',
      {},
      el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, ...rows.map((cells) => el('tr', {}, ...cells))),
    ),
  )
}

export function renderProducts(products) {
  const sections = products.map((product) => {
    const levers = table(
      ['Lever', 'Type', 'Metering ids', 'Formula', 'Counts', 'Scope'],
      product.levers.map((l) => [
        el('th', { scope: 'row' }, el('span', { text: l.name }), ' ', el('code', { class: 'muted', text: l.slug })),
        el('td', { text: l.type }),
        el('td', { class: 'mono', text: l.metering_ids.join(', ') || '—' }),
        el('td', { text: l.formula ?? '—' }),
        el('td', { text: periodText(l) || '—' }),
        el('td', { text: l.scope ?? '—' }),
      ]),
    )
    const plans = table(
      ['Plan', ...product.levers.map((l) => l.name)],
      product.plans.map((plan) => [
        el(
          'th',
          { scope: 'row' },
          el('span', { text: plan.name }),
          ' ',
          el('code', { class: 'muted', text: plan.slug }),
        ),
        ...product.levers.map((l) => el('td', { text: planValueText(l, plan.entitlements[l.slug]) })),
      ]),
    )
    return el(
      'div',
      { 'data-product': product.slug },
      el('h3', { text: `${product.name} (${product.slug})` }),
      product.description ? el('p', { class: 'muted', text: product.description }) : null,
      levers,
      plans,
    )
  })
  $('products').replaceChildren(...sections)
}
