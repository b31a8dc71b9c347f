/* global document, window, fetch, EventSource, setTimeout, setInterval */
// The emulator console: reads GET /_emulator/state, listens to /_emulator/events (Server-Sent
// Events) and drives the admin routes. Plain DOM, no framework and no build step. Every value
// from the emulator is set as text, never as markup: customer names come from users.

const MAX_FEED_ROWS = 100
const POLL_MS = 2000
const numberFormat = new Intl.NumberFormat('en-US')

let current = null // the last state read
let fetchedAt = 0 // Date.now() when it was read, to tick the emulator clock between reads
let recordsTotal = 0
const feedIds = new Set()
const barWidths = new Map() // bar key → last width, so bars slide from where they were
let renderedCustomers = '' // what the customer cards show now, as JSON
let renderedProducts = ''

const $ = (id) => document.getElementById(id)

/** A DOM element: `el('div', { class: 'x', text: 'hi', 'data-k': 'v' }, child…)`. */
function el(tag, props = {}, ...children) {
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

const formatNumber = (n) => numberFormat.format(n)

/** `2026-11-27T23:40:12.345Z` → `2026-11-27 23:40:12 UTC`. */
function formatDateTime(iso) {
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`
}

function formatDuration(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`
  if (seconds % 3600 === 0) return `${seconds / 3600} h`
  if (seconds % 60 === 0 && seconds >= 120) return `${seconds / 60} min`
  return `${seconds} s`
}

// Admin API

/** Calls an admin route; rejects with the emulator's own message (`{"detail": …}`) on an error status. */
async function admin(method, path, body) {
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

function say(text, isError = false) {
  const message = $('message')
  message.textContent = text
  message.className = isError ? 'message error' : 'message'
}

/** Runs an admin action from a control, then shows its outcome and refreshes. */
async function act(action, success) {
  try {
    const result = await action()
    say(typeof success === 'function' ? success(result) : success)
  } catch (error) {
    say(error.message, true)
  }
  await refresh()
}

// Reading the state

let refreshing = null
let refreshAgain = false
let refreshTimer

async function refresh() {
  if (refreshing !== null) {
    refreshAgain = true
    return refreshing
  }
  refreshing = (async () => {
    try {
      const state = await admin('GET', 'state')
      current = state
      fetchedAt = Date.now()
      render(state)
    } catch (error) {
      say(`Cannot read the emulator's state: ${error.message}`, true)
    } finally {
      refreshing = null
      if (refreshAgain) {
        refreshAgain = false
        void refresh()
      }
    }
  })()
  return refreshing
}

/** Many records in a burst make one read, not one each. */
function scheduleRefresh() {
  if (refreshTimer !== undefined) return
  refreshTimer = setTimeout(() => {
    refreshTimer = undefined
    void refresh()
  }, 150)
}

// Rendering

function render(state) {
  const products = state.products
  $('product-title').textContent = products.map((p) => `${p.name} (${p.slug})`).join(' · ')
  const down = state.faults.config.down
  const status = $('planship-status')
  status.textContent = down ? 'down' : 'up'
  status.className = down ? 'pill bad' : 'pill ok'
  $('up').setAttribute('aria-pressed', String(!down))
  $('down').setAttribute('aria-pressed', String(down))
  tickClock()
  renderControls(state)
  // Rebuilt only when something changed: the page reads the state every 2 s, and replacing
  // unchanged cards would lose the reader's place (hover, selection, scrolling on a phone).
  const customersKey = JSON.stringify([state.customers, products])
  if (customersKey !== renderedCustomers) {
    renderedCustomers = customersKey
    renderCustomers(state)
  }
  const productsKey = JSON.stringify(products)
  if (productsKey !== renderedProducts) {
    renderedProducts = productsKey
    renderProducts(products)
  }
  recordsTotal = state.records.total
  for (const record of state.records.recent) addRecord(record, false)
  renderFeedTotal()
}

function tickClock() {
  if (current === null) return
  const now = new Date(current.now_ms + (Date.now() - fetchedAt)).toISOString()
  $('clock').textContent = formatDateTime(now)
}

/** The fault rules this page manages: 503s and apply-then-fail on usage reports. */
const isErrorRule = (r) => r.route === 'reportUsage' && r.kind === 'error' && r.status === 503
const isApplyThenFailRule = (r) => r.route === 'reportUsage' && r.kind === 'apply-then-fail'

function renderControls(state) {
  const form = $('faults-form')
  // Never overwrite what the user is typing.
  if (!form.contains(document.activeElement)) {
    const rules = state.faults.config.rules
    const rate = (predicate) => Math.round((rules.find(predicate)?.rate ?? 0) * 100)
    $('latency').value = String(state.settings.latency_ms)
    $('error-rate').value = String(rate(isErrorRule))
    $('atf-rate').value = String(rate(isApplyThenFailRule))
  }
  const select = $('new-plan')
  const plansKey = JSON.stringify(
    state.products.map((p) => [p.slug, p.name, p.plans.map((plan) => [plan.slug, plan.name])]),
  )
  // Replacing the options of an open drop-down would close it under the user's pointer.
  if (select.dataset.plans === plansKey) return
  select.dataset.plans = plansKey
  const chosen = select.value
  const several = state.products.length > 1
  const options = state.products.flatMap((product) =>
    product.plans.map((plan) =>
      el('option', {
        value: `${product.slug}/${plan.slug}`,
        text: several ? `${product.name} · ${plan.name}` : `${plan.name} (${plan.slug})`,
      }),
    ),
  )
  select.replaceChildren(...options)
  if (options.some((o) => o.value === chosen)) select.value = chosen
}

function renderCustomers(state) {
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

function renderProducts(products) {
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

// The live feed

function addRecord(record, fresh) {
  if (feedIds.has(record.id)) return
  feedIds.add(record.id)
  if (fresh) recordsTotal++
  const who = record.alternative_id ?? record.customer_id
  const row = el(
    'li',
    { class: fresh ? 'fresh' : undefined, 'data-record': record.id },
    el('span', { class: 'feed-time', text: record.recorded_at.slice(11, 19) }),
    el(
      'span',
      { class: 'feed-what' },
      el('strong', { class: 'feed-customer', text: who }),
      ' · ',
      el('code', { class: 'feed-metering-id', text: record.metering_id }),
      record.bucket === null ? null : el('span', { class: 'feed-bucket muted', text: ` · bucket ${record.bucket}` }),
    ),
    el('span', { class: 'feed-usage', text: `+${formatNumber(record.usage)}` }),
  )
  const list = $('feed')
  list.prepend(row)
  while (list.children.length > MAX_FEED_ROWS) {
    const last = list.lastElementChild
    feedIds.delete(last.dataset.record)
    last.remove()
  }
  $('feed-empty').hidden = true
  renderFeedTotal()
}

function renderFeedTotal() {
  $('records-total').textContent = recordsTotal === 0 ? '' : `${formatNumber(recordsTotal)} in all`
}

function setFeedStatus(text, kind) {
  const status = $('feed-status')
  status.textContent = text
  status.className = `pill ${kind}`
}

function connect() {
  const source = new EventSource('/_emulator/events')
  source.addEventListener('open', () => setFeedStatus('live', 'ok'))
  // EventSource reconnects by itself (the server asks for 1 s).
  source.addEventListener('error', () => setFeedStatus('reconnecting', 'warn'))
  source.addEventListener('record', (event) => {
    addRecord(JSON.parse(event.data), true)
    scheduleRefresh()
  })
  source.addEventListener('change', () => scheduleRefresh())
  // A reset empties the log: start the feed over.
  source.addEventListener('change', (event) => {
    if (JSON.parse(event.data).path === '/_emulator/reset') clearFeed()
  })
}

function clearFeed() {
  feedIds.clear()
  barWidths.clear()
  recordsTotal = 0
  $('feed').replaceChildren()
  $('feed-empty').hidden = false
  renderFeedTotal()
}

// Controls

function rulesWith(errorRate, applyThenFailRate) {
  const kept = (current?.faults.config.rules ?? []).filter((r) => !isErrorRule(r) && !isApplyThenFailRule(r))
  if (errorRate > 0) kept.push({ route: 'reportUsage', kind: 'error', status: 503, rate: errorRate })
  if (applyThenFailRate > 0) {
    kept.push({ route: 'reportUsage', kind: 'apply-then-fail', mode: 'status', status: 503, rate: applyThenFailRate })
  }
  return kept
}

function percent(input) {
  const value = Number(input.value)
  if (!Number.isFinite(value) || value < 0 || value > 100)
    throw new Error(`${input.labels[0].textContent.trim()}: 0 to 100`)
  return value / 100
}

function wireControls() {
  $('up').addEventListener('click', () =>
    act(() => admin('PUT', 'faults', { down: false }), 'Planship is up: API requests are answered again.'),
  )
  $('down').addEventListener('click', () =>
    act(
      () => admin('PUT', 'faults', { down: true }),
      'Planship is down: every API connection is reset. Cold customers now follow your failMode.',
    ),
  )
  $('faults-form').addEventListener('submit', (event) => {
    event.preventDefault()
    void act(async () => {
      const latency = Number($('latency').value)
      if (!Number.isFinite(latency) || latency < 0) throw new Error('Added latency: a number of ms >= 0')
      const rules = rulesWith(percent($('error-rate')), percent($('atf-rate')))
      await admin('POST', 'settings', { latency_ms: latency })
      await admin('PUT', 'faults', { rules })
      return rules
    }, `Faults applied.`)
    document.activeElement?.blur()
  })
  for (const button of document.querySelectorAll('[data-advance]')) {
    button.addEventListener('click', () =>
      act(
        () => admin('POST', 'clock', { advance_ms: Number(button.dataset.advance) }),
        (result) => `Clock advanced ${button.textContent}: now ${formatDateTime(result.now)}.`,
      ),
    )
  }
  $('customer-form').addEventListener('submit', (event) => {
    event.preventDefault()
    const input = $('new-alternative-id')
    const [product, plan] = $('new-plan').value.split('/')
    void act(
      async () => {
        const created = await admin('POST', 'customers', { alternative_id: input.value.trim(), product, plan })
        input.value = ''
        return created
      },
      (created) => `Created ${created.alternative_id} on ${plan}.`,
    )
  })
  $('reset').addEventListener('click', () =>
    act(async () => {
      await admin('POST', 'reset')
      clearFeed()
    }, 'Back to the fixture: customers, usage, clock and faults.'),
  )
}

wireControls()
connect()
void refresh()
setInterval(tickClock, 1000)
// Rolling windows empty and lagging usage appears with time alone, without any event.
setInterval(() => {
  if (!document.hidden) void refresh()
}, POLL_MS)
