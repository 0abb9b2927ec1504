/**
 * Holds a connection's messages from the moment it opens, so that none is lost between the
 * handshake (which takes them one at a time) and the link (which takes the rest as they come).
 */
import type { Message, WireSink } from './wire.js';

export class MessageQueue {
  private queue: Message[] = [];
  private closedWith: [number, string] | undefined;
  private waiter: (() => void) | undefined;
  private sink: WireSink | undefined;

  /** Hands `m` to the sink, or queues a copy of it (the wire may reuse its buffers). */
  push(m: Message): void {
    if (this.sink) return this.sink.message(m);
    this.queue.push({
      head: Buffer.from(m.head),
      payload: Buffer.from(m.payload),
      isBinary: m.isBinary,
    });
    this.waiter?.();
  }

  /** The connection closed; only the first call counts. */
  close(code: number, reason: string): void {
    if (this.closedWith) return;
    this.closedWith = [code, reason];
    if (this.sink) this.sink.closed(code, reason);
    else this.waiter?.();
  }

  /** The sink's placement for a message's payload (see {@link WireSink.place}). */
  place(head: Buffer, bytes: number): Uint8Array | undefined {
    return this.sink?.place?.(head, bytes);
  }

  get pending(): number {
    return this.queue.length;
  }

  /** The next message, or a rejection when the connection closes or `timeoutMs` passes. */
  take(timeoutMs: number, what: string): Promise<Message> {
    return new Promise((resolve, reject) => {
      const tryNow = (): boolean => {
        const m = this.queue.shift();
        if (m) {
          resolve(m);
          return true;
        }
        if (this.closedWith) {
          const [code, reason] = this.closedWith;
          reject(new Error(`connection closed while waiting for ${what} (${code} ${reason})`));
          return true;
        }
        return false;
      };
      if (tryNow()) return;
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = () => {
        if (tryNow()) {
          clearTimeout(timer);
          this.waiter = undefined;
        }
      };
    });
  }

  /** Hands every queued and later message to `sink`. */
  drainTo(sink: WireSink): void {
    this.sink = sink;
    for (const m of this.queue.splice(0)) sink.message(m);
    if (this.closedWith) sink.closed(...this.closedWith);
  }
}
