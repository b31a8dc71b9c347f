/* global document, setTimeout, setInterval */
// The emulator console: reads GET /_emulator/state, listens to /_emulator/events (Server-Sent
// Events) and drives the admin routes. Plain DOM and ES modules, no framework and no build step.
// Every value from the emulator is set as text, never as markup: customer names come from users.
import { admin } from './admin-api.js'
import { $, el, formatDateTime } from './dom.js'
import { addRecord, clearFeed, connect, setRecordsTotal } from './feed.js'
import { forgetBars, renderCustomers, renderProducts } from './views.js'

const POLL_MS = 2000

let current = null // the last state read
let fetchedAt = 0 // Date.now() when it was read, to tick the emulator clock between reads
let renderedCustomers = '' // what the customer cards show now, as JSON
let renderedProducts = ''

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
  for (const record of state.records.recent) addRecord(record, false)
  setRecordsTotal(state.records.total)
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
      startOver()
    }, 'Back to the fixture: customers, usage, clock and faults.'),
  )
}

/** After a reset the log is empty: the feed and the bars start over. */
function startOver() {
  clearFeed()
  forgetBars()
}

wireControls()
connect({
  onRecord: scheduleRefresh,
  onChange: (change) => {
    if (change.path === '/_emulator/reset') startOver()
    scheduleRefresh()
  },
})
void refresh()
setInterval(tickClock, 1000)
// Rolling windows empty and lagging usage appears with time alone, without any event.
setInterval(() => {
  if (!document.hidden) void refresh()
}, POLL_MS)
