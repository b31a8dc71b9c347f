/** One request through an app's Node request listener, in process: real IncomingMessage and ServerResponse over a stream that discards what it is sent. */
import { IncomingMessage, ServerResponse } from 'node:http'
import { Duplex } from 'node:stream'

class NullSocket extends Duplex {
  override _read(): void {}
  override _write(_chunk: unknown, _encoding: string, callback: () => void): void {
    callback()
  }
  override _writev(_chunks: unknown, callback: () => void): void {
    callback()
  }
}

function closed(res: ServerResponse & { _closed?: boolean }): void {
  res.destroyed = true
  res._closed = true
  res.emit('close')
}

/** Resolves with the response's status once it finished. */
export function request(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  customerId: string,
): Promise<number> {
  const socket = new NullSocket()
  const req = new IncomingMessage(socket as never)
  req.method = 'GET'
  req.url = '/v1/widgets'
  req.headers = { host: '127.0.0.1', 'x-customer-id': customerId }
  req.push(null)
  const res = new ServerResponse(req)
  res.assignSocket(socket as never)
  return new Promise((resolve) => {
    // As Node's server does on 'finish' (its resOnFinish): detach, then 'close' on the next tick,
    // so that 'close' listeners cost what they cost behind a real server.
    res.once('finish', () => {
      res.detachSocket(socket as never)
      process.nextTick(closed, res)
      resolve(res.statusCode)
    })
    handler(req, res)
  })
}
