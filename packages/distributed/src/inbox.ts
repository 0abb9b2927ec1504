/**
 * Holds a WebSocket's messages from the moment it opens, so that none is lost between the
 * handshake (which takes them one at a time) and the link (which takes the rest as they come).
 */
import type { WebSocket } from 'ws';

import { HEADER_BYTES } from './frame.js';

export interface Message {
  /** The frame header's bytes (the first 32, or fewer for a short frame). */
  head: Buffer;
  payload: Buffer;
  isBinary: boolean;
}

/**
 * Splits a message into header and payload. A frame sent as two fragments (header, then payload)
 * arrives as two buffers: the payload is used as it is, without joining it to the header.
 */
function split(data: Buffer | Buffer[], isBinary: boolean): Message {
  const parts = Array.isArray(data) ? data : [data];
  const first = parts[0] ?? Buffer.alloc(0);
  if (parts.length === 2 && first.length === HEADER_BYTES) {
    return { head: first, payload: parts[1] as Buffer, isBinary };
  }
  const whole = parts.length === 1 ? first : Buffer.concat(parts);
  return { head: whole.subarray(0, HEADER_BYTES), payload: whole.subarray(HEADER_BYTES), isBinary };
}

export interface InboxSink {
  message(m: Message): void;
  closed(code: number, reason: string): void;
}

export class Inbox {
  private queue: Message[] = [];
  private closedWith: [number, string] | undefined;
  private waiter: (() => void) | undefined;
  private sink: InboxSink | undefined;

  constructor(readonly ws: WebSocket) {
    ws.binaryType = 'fragments';
    ws.on('message', (data: Buffer | Buffer[], isBinary: boolean) => {
      const m = split(data, isBinary);
      if (this.sink) this.sink.message(m);
      else {
        this.queue.push(m);
        this.waiter?.();
      }
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closedWith = [code, reason.toString()];
      if (this.sink) this.sink.closed(code, reason.toString());
      else this.waiter?.();
    });
  }

  /** The next message, or a rejection when the socket closes or `timeoutMs` passes. */
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
  drainTo(sink: InboxSink): void {
    this.sink = sink;
    for (const m of this.queue.splice(0)) sink.message(m);
    if (this.closedWith) sink.closed(...this.closedWith);
  }
}
