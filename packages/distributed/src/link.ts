/**
 * An authenticated WebSocket to one remote (a peer rank or the coordinator). Checks every frame's
 * header before handing it on; a malformed, oversized or foreign frame closes the link, is logged,
 * and never reaches a tensor.
 */
import { WebSocket, WebSocketServer } from 'ws';

import { acceptHandshake, offerHandshake, type Credentials, type Role } from './auth.js';
import { decodeHeader, type FrameHeader, HEADER_BYTES } from './frame.js';
import { Inbox } from './inbox.js';

export type Log = (line: string) => void;

export interface LinkHandlers {
  /**
   * A frame. A large payload lies in a buffer the link reuses for the next frame: use it before
   * returning, or copy it.
   */
  frame(h: FrameHeader, payload: Buffer): void;
  /** The link went away; `why` says how (closed by the remote, bad frame, oversized frame). */
  lost(why: string): void;
}

/** Payloads up to this size are joined to their header and sent as one frame. */
const JOIN_UP_TO_BYTES = 16 << 10;

const ZERO_MASK = (mask: Buffer): void => {
  mask.fill(0);
};

export class Link {
  private handlers: LinkHandlers | undefined;
  private lostWhy: string | undefined;
  private closing = false;
  private backlog: [FrameHeader, Buffer][] = [];
  private readonly ws: WebSocket;

  constructor(
    inbox: Inbox,
    creds: Credentials,
    /** How messages name the remote, e.g. "rank 3". */
    readonly name: string,
    private readonly log: Log,
  ) {
    this.ws = inbox.ws;
    reuseReceiveBuffer(this.ws);
    this.ws.on('error', (e: Error) =>
      this.drop(`connection to ${name} failed: ${e.message}`, 1011),
    );
    inbox.drainTo({
      message: ({ head, payload, isBinary }) => {
        if (this.closing) return;
        let h: FrameHeader;
        try {
          if (!isBinary) throw new Error('malformed frame: expected a binary frame, got text');
          h = decodeHeader(head, creds.tag);
        } catch (e) {
          this.drop(`${name} sent a bad frame: ${(e as Error).message}`, 1002);
          return;
        }
        if (this.handlers) this.handlers.frame(h, payload);
        else this.backlog.push([h, Buffer.from(payload)]);
      },
      closed: (code, reason) => {
        if (this.closing) return;
        this.report(
          code === 1009
            ? `${name} sent a frame over the size limit`
            : `${name} closed its connection (${code}${reason ? ` ${reason}` : ''})`,
        );
      },
    });
  }

  /** Starts delivering frames (those that arrived before are delivered first). */
  listen(handlers: LinkHandlers): void {
    this.handlers = handlers;
    for (const [h, d] of this.backlog.splice(0)) handlers.frame(h, d);
    if (this.lostWhy !== undefined) handlers.lost(this.lostWhy);
  }

  /** Holds frames back again until the next `listen`. */
  pause(): void {
    this.handlers = undefined;
  }

  /**
   * Sends a header and an optional payload as one WebSocket message: a small payload joined to the
   * header in one frame (one write, one read on the other side), a large one as a second frame
   * without copying it.
   */
  send(header: Buffer, payload?: Uint8Array, done?: (err?: Error) => void): void {
    if (payload === undefined || payload.byteLength === 0) {
      this.ws.send(header, { binary: true }, done);
      return;
    }
    if (payload.byteLength <= JOIN_UP_TO_BYTES) {
      this.ws.send(Buffer.concat([header, payload]), { binary: true }, done);
      return;
    }
    this.ws.send(header, { binary: true, fin: false });
    this.ws.send(payload, { binary: true, fin: true }, done);
  }

  /** Sends a WebSocket ping; `pong()` resolves when the answer comes. */
  ping(): void {
    if (!this.closing) this.ws.ping();
  }

  onPong(fn: () => void): void {
    this.ws.on('pong', fn);
  }

  /** Stops the link; the remote sees a normal close. */
  close(): void {
    this.closing = true;
    this.ws.close(1000, 'done');
  }

  private drop(why: string, code: number): void {
    if (this.closing) return;
    this.log(why);
    this.report(why);
    this.closing = true;
    this.ws.close(code, why.slice(0, 120));
    this.ws.terminate();
  }

  private report(why: string): void {
    if (this.lostWhy !== undefined) return;
    this.lostWhy = why;
    this.handlers?.lost(why);
  }
}

/** What `reuseReceiveBuffer` needs of ws's frame parser. */
interface WsReceiver {
  consume(n: number): Buffer;
  _buffers: Buffer[];
  _bufferedBytes: number;
  _fin: boolean;
}

/** Frames from this size up are copied into the link's reused buffer. */
const REUSE_FROM_BYTES = 16 << 10;

/**
 * ws copies a frame that spans several socket reads into a newly allocated buffer, and for large
 * frames that allocation (fresh pages every time) costs several times the copy itself. This makes
 * the link's parser copy the final frame of a message into one buffer it reuses instead: messages
 * are delivered synchronously, so a frame's payload is handled before the next one arrives.
 * Leaves ws as it is when its parser does not look as expected.
 */
function reuseReceiveBuffer(ws: WebSocket): void {
  const r = (ws as unknown as { _receiver?: Partial<WsReceiver> })._receiver;
  if (!r || typeof r.consume !== 'function' || !Array.isArray(r._buffers)) return;
  if (typeof r._bufferedBytes !== 'number' || typeof r._fin !== 'boolean') return;
  const receiver = r as WsReceiver;
  const consume = receiver.consume.bind(receiver);
  let reused = Buffer.alloc(0);
  receiver.consume = (n: number): Buffer => {
    const queue = receiver._buffers;
    const first = queue[0];
    if (n < REUSE_FROM_BYTES || !receiver._fin || first === undefined || n <= first.length) {
      return consume(n);
    }
    if (reused.length < n) reused = Buffer.allocUnsafeSlow(n);
    const out = reused.subarray(0, n);
    receiver._bufferedBytes -= n;
    for (let at = 0; at < n;) {
      const buf = queue[0] as Buffer;
      const take = Math.min(buf.length, n - at);
      out.set(take === buf.length ? buf : buf.subarray(0, take), at);
      if (take === buf.length) queue.shift();
      else queue[0] = buf.subarray(take);
      at += take;
    }
    return out;
  };
}

/** Limits of frames this side accepts: header plus the largest payload. */
export function maxPayload(maxFrameBytes: number): number {
  return HEADER_BYTES + maxFrameBytes;
}

/** Dials `url`, proves the token and returns the link. */
export async function dial(
  url: string,
  creds: Credentials,
  rank: number,
  role: Role,
  name: string,
  opts: { maxFrameBytes: number; timeoutMs: number; log: Log },
): Promise<Link> {
  const ws = new WebSocket(url, {
    maxPayload: maxPayload(opts.maxFrameBytes),
    perMessageDeflate: false,
    generateMask: ZERO_MASK,
    handshakeTimeout: opts.timeoutMs,
  });
  ws.on('error', () => undefined); // reported by the handshake's close
  const inbox = new Inbox(ws);
  try {
    await Promise.race([
      offerHandshake(inbox, creds, rank, role, opts.timeoutMs),
      new Promise<never>((_, reject) =>
        ws.once('error', (e) => reject(new Error(`cannot reach ${name} at ${url}: ${e.message}`))),
      ),
    ]);
  } catch (e) {
    ws.terminate();
    throw e;
  }
  return new Link(inbox, creds, name, opts.log);
}

export interface Listener {
  host: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Listens on host:port (port 0: any free one) and hands each connection that proves the token to
 * `accepted`. Connections that fail the handshake are logged and closed.
 */
export async function listen(
  host: string,
  port: number,
  creds: Credentials,
  opts: { maxFrameBytes: number; timeoutMs: number; log: Log; where: string },
  accepted: (inbox: Inbox, rank: number, role: Role) => void,
): Promise<Listener> {
  const wss = new WebSocketServer({
    host,
    port,
    maxPayload: maxPayload(opts.maxFrameBytes),
    perMessageDeflate: false,
  });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', (e) =>
      reject(new Error(`${opts.where} cannot listen on ${host}:${port}: ${e.message}`)),
    );
  });
  wss.on('connection', (ws, req) => {
    const from = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    ws.on('error', () => undefined);
    const inbox = new Inbox(ws);
    acceptHandshake(inbox, creds, opts.timeoutMs).then(
      ({ rank, role }) => accepted(inbox, rank, role),
      (e: Error) => {
        opts.log(`${opts.where} rejected a connection from ${from}: ${e.message}`);
        ws.close(4001, 'rejected');
        ws.terminate();
      },
    );
  });
  const addr = wss.address();
  if (addr === null || typeof addr === 'string')
    throw new Error(`${opts.where}: unexpected pipe address ${addr}`);
  return {
    host,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}
