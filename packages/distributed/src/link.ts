/**
 * An authenticated connection to one remote (a peer rank or the coordinator): ws for the
 * coordinator, WebSocket frames straight on the socket between peers (see socket_wire.ts). Checks
 * every frame's header before handing it on; a malformed, oversized or foreign frame closes the
 * link, is logged, and never reaches a tensor.
 */
import { createServer } from 'node:http';

import { WebSocket, WebSocketServer } from 'ws';

import { acceptHandshake, offerHandshake, type Credentials, type Role } from './auth.js';
import {
  decodeHeader,
  encodeControl,
  type FrameHeader,
  FrameKind,
  HEADER_BYTES,
  kindName,
} from './frame.js';
import { Inbox } from './inbox.js';
import { BadFrameError, type Wire } from './wire.js';

export type Log = (line: string) => void;

/** What a link runs on: TCP, or a Unix domain socket to a process on the same machine. */
export type Transport = 'tcp' | 'unix';

export interface LinkHandlers {
  /**
   * A frame. A large payload lies in a buffer the link reuses for the next frame: use it before
   * returning, or copy it.
   */
  frame(h: FrameHeader, payload: Buffer): void;
  /** The link went away; `why` says how (closed by the remote, bad frame, oversized frame). */
  lost(why: string): void;
  /**
   * Where a large frame's payload may be received straight away, before `frame` is called with
   * it (see {@link WireSink.place}); asked only of frames whose header passed the checks.
   */
  place?(h: FrameHeader, bytes: number): Uint8Array | undefined;
}

const ZERO_MASK = (mask: Buffer): void => {
  mask.fill(0);
};

export class Link {
  private handlers: LinkHandlers | undefined;
  private lostWhy: string | undefined;
  private closing = false;
  private backlog: [FrameHeader, Buffer][] = [];

  constructor(
    private readonly wire: Wire,
    creds: Credentials,
    /** How messages name the remote, e.g. "rank 3". */
    readonly name: string,
    private readonly log: Log,
    readonly transport: Transport = 'tcp',
  ) {
    wire.onError((e: Error) =>
      e instanceof BadFrameError
        ? this.drop(`${name} sent a bad frame: ${e.message}`, 1002)
        : this.drop(`connection to ${name} failed: ${e.message}`, 1011),
    );
    wire.drainTo({
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
      place: (head, bytes) => {
        if (this.closing || !this.handlers?.place) return undefined;
        try {
          return this.handlers.place(decodeHeader(head, creds.tag), bytes);
        } catch {
          return undefined; // refused when the whole frame is delivered
        }
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

  /** Sends a header and an optional payload as one message; `done` once it is written. */
  send(header: Buffer, payload?: Uint8Array, done?: (err?: Error) => void): void {
    this.wire.send(header, payload, done);
  }

  /** Sends a WebSocket ping; `pong()` resolves when the answer comes. */
  ping(): void {
    if (!this.closing) this.wire.ping();
  }

  onPong(fn: () => void): void {
    this.wire.onPong(fn);
  }

  /** Stops the link; the remote sees a normal close. */
  close(): void {
    this.closing = true;
    this.wire.close(1000, 'done');
  }

  private drop(why: string, code: number): void {
    if (this.closing) return;
    this.log(why);
    this.report(why);
    this.closing = true;
    this.wire.close(code, why.slice(0, 120));
    this.wire.terminate();
  }

  private report(why: string): void {
    if (this.lostWhy !== undefined) return;
    this.lostWhy = why;
    this.handlers?.lost(why);
  }
}

/** Limits of frames this side accepts: header plus the largest payload. */
export function maxPayload(maxFrameBytes: number): number {
  return HEADER_BYTES + maxFrameBytes;
}

/** The remote could not be reached at all (nothing listens there, no route): no handshake began. */
export class UnreachableError extends Error {}

/** Dials `url` (`ws://host:port` or `ws+unix://path:/`), proves the token and returns the link. */
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
        ws.once('error', (e) =>
          reject(new UnreachableError(`cannot reach ${name} at ${url}: ${e.message}`)),
        ),
      ),
    ]);
  } catch (e) {
    ws.terminate();
    throw e;
  }
  if (role !== 'peer') return new Link(inbox, creds, name, opts.log);
  const wire = await inbox.takeOver({ side: 'client', maxPayload: maxPayload(opts.maxFrameBytes) });
  wire.send(encodeControl(creds.tag, FrameKind.ready, {}));
  const transport = url.startsWith('ws+unix:') ? 'unix' : 'tcp';
  return new Link(wire, creds, name, opts.log, transport);
}

/**
 * The accepting side of a data link: moves the connection to a {@link SocketWire} in the same
 * turn as the handshake's welcome (nothing of what the dialler sends next is read by ws), and
 * waits for the dialler's `ready`, its first frame on the new wire. Until `ready` arrives the
 * dialler is still on ws and nothing is sent to it, so neither side switches mid-frame.
 */
async function acceptDataLink(
  inbox: Inbox,
  creds: Credentials,
  opts: { maxFrameBytes: number; timeoutMs: number },
): Promise<Wire> {
  const wire = await inbox.takeOver({ side: 'server', maxPayload: maxPayload(opts.maxFrameBytes) });
  try {
    const m = await wire.take(opts.timeoutMs, 'a ready frame');
    const h = decodeHeader(m.head, creds.tag);
    if (h.kind !== FrameKind.ready) {
      throw new Error(`expected a ready frame, got ${kindName(h.kind)}`);
    }
  } catch (e) {
    wire.terminate();
    throw e;
  }
  return wire;
}

export interface Listener {
  /** The TCP port, or 0 for a Unix socket. */
  port: number;
  close(): Promise<void>;
}

/** A TCP address (port 0: any free one) or a Unix socket's path. */
export type Bind = { host: string; port: number } | { path: string };

const describeBind = (b: Bind): string => ('path' in b ? b.path : `${b.host}:${b.port}`);

/** What a connection may send in one frame before it has proved the token: a hello, and room. */
export const HANDSHAKE_PAYLOAD_BYTES = 4096;

/** Connections proving the token at once, by default; more are refused until some finish. */
export const MAX_PENDING_HANDSHAKES = 64;

/**
 * Listens on `bind` and hands each connection that proves the token to `accepted`. Until it has,
 * a connection may send frames of {@link HANDSHAKE_PAYLOAD_BYTES} at most, and at most
 * `maxPending` connections (default {@link MAX_PENDING_HANDSHAKES}) may be at it at once: others
 * are closed at once. Connections that fail or are refused are closed and logged, 5 lines per 10
 * seconds at most.
 */
export async function listen(
  bind: Bind,
  creds: Credentials,
  opts: { maxFrameBytes: number; timeoutMs: number; log: Log; where: string; maxPending?: number },
  accepted: (wire: Wire, rank: number, role: Role, transport: Transport) => void,
): Promise<Listener> {
  const transport: Transport = 'path' in bind ? 'unix' : 'tcp';
  const server = createServer();
  const wss = new WebSocketServer({
    server,
    maxPayload: HEADER_BYTES + HANDSHAKE_PAYLOAD_BYTES,
    perMessageDeflate: false,
  });
  const maxPending = opts.maxPending ?? MAX_PENDING_HANDSHAKES;
  let pending = 0;
  const turnedAway = rateLimited(opts.log, 10_000);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) =>
      reject(new Error(`${opts.where} cannot listen on ${describeBind(bind)}: ${e.message}`)),
    );
    server.listen('path' in bind ? bind.path : { host: bind.host, port: bind.port }, resolve);
  });
  wss.on('connection', (ws, req) => {
    const from =
      'path' in bind
        ? `a process on this machine`
        : `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    ws.on('error', () => undefined);
    if (pending >= maxPending) {
      turnedAway(
        `${opts.where} refused a connection from ${from}: ${pending} connections are already proving the token`,
      );
      ws.terminate();
      return;
    }
    pending += 1;
    let settled = false;
    const settle = (): void => {
      if (!settled) pending -= 1;
      settled = true;
    };
    ws.once('close', settle);
    const inbox = new Inbox(ws);
    acceptHandshake(inbox, creds, opts.timeoutMs).then(
      ({ rank, role }) => {
        settle();
        // Proven: from now on the link's own frame size applies.
        setMaxPayload(ws, maxPayload(opts.maxFrameBytes));
        if (role !== 'peer') return accepted(inbox, rank, role, transport);
        acceptDataLink(inbox, creds, opts).then(
          (wire) => accepted(wire, rank, role, transport),
          (e: Error) =>
            opts.log(`${opts.where} dropped the data link of rank ${rank}: ${e.message}`),
        );
      },
      (e: Error) => {
        settle();
        turnedAway(`${opts.where} rejected a connection from ${from}: ${e.message}`);
        ws.close(4001, 'rejected');
        ws.terminate();
      },
    );
  });
  const addr = server.address();
  return {
    port: addr !== null && typeof addr === 'object' ? addr.port : 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        // Closing a listening Unix socket also unlinks its path.
        server.close(() => resolve());
      }),
  };
}

/**
 * Sets the largest frame a ws connection accepts from now on. ws reads it from its receiver's
 * `_maxPayload` for each frame's header (before buffering the frame); it has no public setter.
 */
function setMaxPayload(ws: WebSocket, bytes: number): void {
  const receiver = (ws as unknown as { _receiver?: { _maxPayload?: unknown } })._receiver;
  if (receiver === undefined || typeof receiver._maxPayload !== 'number') {
    throw new Error('ws: expected a receiver with _maxPayload (ws 8), found none');
  }
  receiver._maxPayload = bytes;
}

/**
 * `log`, at most `burst` lines per `windowMs`: the rest are counted, and the count goes out with
 * the next line that does.
 */
function rateLimited(log: Log, windowMs: number, burst = 5): (line: string) => void {
  let windowStart = -Infinity;
  let sent = 0;
  let held = 0;
  return (line) => {
    const now = performance.now();
    if (now - windowStart >= windowMs) {
      windowStart = now;
      sent = 0;
    }
    if (sent >= burst) {
      held += 1;
      return;
    }
    log(held > 0 ? `${line} (and ${held} more turned away before it, not logged)` : line);
    sent += 1;
    held = 0;
  };
}
