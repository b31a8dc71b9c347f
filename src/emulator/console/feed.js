/* global EventSource */
// The live feed of metering records, fed by the emulator's Server-Sent Events.
import { $, el, formatNumber } from './dom.js'

const MAX_FEED_ROWS = 100
const feedIds = new Set() // records shown, so that one read twice (stream and state) shows once
let recordsTotal = 0

/** Shows a record at the top of the feed; `fresh` ones came over the stream and are highlighted. */
export function addRecord(record, fresh) {
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
  prependRow(row)
  renderFeedTotal()
}

/** Puts a row at the top of the feed, keeping the newest MAX_FEED_ROWS. */
function prependRow(row) {
  const list = $('feed')
  list.prepend(row)
  while (list.children.length > MAX_FEED_ROWS) {
    const last = list.lastElementChild
    if (last.dataset.record !== undefined) feedIds.delete(last.dataset.record)
    last.remove()
  }
  $('feed-empty').hidden = true
}

/**
 * Shows a threshold crossing (usage reached 80 % or 100 % of a limit, once per period) at the top
 * of the feed, set apart from the records: what an app's `alerts` would e-mail about.
 */
export function addThreshold(crossing) {
  const who = crossing.alternative_id ?? crossing.customer_id
  const percent = `${Math.round(crossing.threshold * 100)} %`
  const row = el(
    'li',
    { class: 'threshold', 'data-threshold': `${crossing.lever} ${crossing.threshold}` },
    el('span', { class: 'feed-time', text: crossing.at.slice(11, 19) }),
    el(
      'span',
      { class: 'feed-what' },
      el('strong', { class: 'feed-customer', text: who }),
      ' reached ',
      el('strong', { class: 'feed-threshold', text: percent }),
      ' of ',
      el('code', { class: 'feed-lever', text: crossing.lever }),
    ),
    el('span', { class: 'feed-usage', text: `${formatNumber(crossing.used)} / ${formatNumber(crossing.limit)}` }),
  )
  prependRow(row)
}

/** How many records the emulator holds, as its state says. */
export function setRecordsTotal(total) {
  recordsTotal = total
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

/**
 * Listens to the emulator's events: `onRecord(record)` for each metering record, `onChange(change)`
 * after each admin change. EventSource reconnects by itself (the server asks for 1 s).
 */
export function connect({ onRecord, onChange }) {
  const source = new EventSource('/_emulator/events')
  source.addEventListener('open', () => setFeedStatus('live', 'ok'))
  source.addEventListener('error', () => setFeedStatus('reconnecting', 'warn'))
  source.addEventListener('record', (event) => {
    const record = JSON.parse(event.data)
    addRecord(record, true)
    onRecord(record)
  })
  source.addEventListener('threshold', (event) => addThreshold(JSON.parse(event.data)))
  source.addEventListener('change', (event) => onChange(JSON.parse(event.data)))
}

export function clearFeed() {
  feedIds.clear()
  recordsTotal = 0
  $('feed').replaceChildren()
  $('feed-empty').hidden = false
  renderFeedTotal()
}
