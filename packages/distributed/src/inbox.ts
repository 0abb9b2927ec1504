/**
 * Holds a WebSocket's messages from the moment it opens, so that none is lost between the
 * handshake (which takes them one at a time) and the link (which takes the rest as they come).
 */
import type { WebSocket } from 'ws';

export interface Message {
  data: Buffer;
  isBinary: boolean;
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
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (this.sink) this.sink.message({ data, isBinary });
      else {
        this.queue.push({ data, isBinary });
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
