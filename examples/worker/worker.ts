/**
 * Metering outside HTTP: a queue worker and a webhook handler on the framework-neutral API.
 * Run it with `npx tsx examples/worker/worker.ts` (the embedded emulator stands in for Planship).
 */
import type { MeterCore } from '../../src/core/index.js'

export interface RenderJob {
  customerId: string
  project: string
  /** Frames to render: the job's cost. */
  frames: number
}

/**
 * Renders a job only when the customer's plan has room for it, and bills it only when it was
 * done: the units are reserved first (a concurrent job cannot take them), then committed, or
 * released if the work failed. commit() and release() are idempotent, so a retried step cannot
 * bill twice.
 */
export async function processRenderJob(
  meter: MeterCore,
  job: RenderJob,
  render: (job: RenderJob) => Promise<number>,
): Promise<'done' | 'failed' | string> {
  const reservation = await meter.reserve(job.customerId, 'render', { cost: job.frames, bucket: job.project })
  if (!reservation.allowed) return reservation.denial.code // e.g. quota_exceeded: retry the job later
  try {
    const rendered = await render(job)
    await reservation.commit(rendered) // bill what was really rendered
    return 'done'
  } catch {
    await reservation.release()
    return 'failed'
  }
}

/** A webhook telling us of usage that already happened: reported, never refused. */
export function onImportWebhook(meter: MeterCore, event: { customerId: string; rows: number }): void {
  meter.report(event.customerId, 'api-call', event.rows, { bucket: 'imports' })
}

/** Gates a background feature, as requireFeature() does a route. */
export async function exportIfEntitled(meter: MeterCore, customerId: string): Promise<boolean> {
  return meter.isEntitled(customerId, 'csv-export')
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { startEmulator } = await import('../../src/emulator/index.js')
  const { createMeter } = await import('../../src/core/index.js') // planship-meter/core: no web framework
  const emulator = await startEmulator()
  // The Koa and Express meters have the same neutral API; a worker needs no identify.
  const meter = createMeter({
    productSlug: emulator.productSlug,
    planship: { baseUrl: emulator.url, clientId: emulator.clientId, clientSecret: emulator.clientSecret },
  })
  const render = async (job: RenderJob) => job.frames
  const jobs = Array.from({ length: 7 }, (_, i) => ({
    customerId: 'free-customer',
    project: 'demo',
    frames: i < 6 ? 1 : 3,
  }))
  console.log('render jobs:', await Promise.all(jobs.map((job) => processRenderJob(meter, job, render))))
  onImportWebhook(meter, { customerId: 'pro-customer', rows: 250 })
  console.log('free-customer may export CSV:', await exportIfEntitled(meter, 'free-customer'))
  await meter.close() // waits for open reservations, then delivers everything
  console.log(
    'renders Planship received:',
    emulator.recordedUsage({ customerId: 'free-customer', meteringId: 'render' }),
  )
  console.log(
    'imports Planship received:',
    emulator.recordedUsage({ customerId: 'pro-customer', meteringId: 'api-call' }),
  )
  await emulator.close()
}
