/** What the bench scripts share to talk to their child processes over IPC. */
import type { ChildProcess } from 'node:child_process'

export type Message = { type: string; [key: string]: unknown }

/** Sends `message` and resolves with the child's next message. */
export function ask(child: ChildProcess, message: Message): Promise<Message> {
  return new Promise((resolve) => {
    child.once('message', resolve)
    child.send(message)
  })
}

/** Asks the child to close and waits until it has exited. */
export async function stop(child: ChildProcess): Promise<void> {
  child.removeAllListeners('exit')
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.send({ type: 'close' })
  await exited
}
