/**
 * The data plane between two peers: RFC 6455 binary frames written and parsed straight on the TCP
 * socket that ws opened and authenticated, so the bytes on the wire stay WebSocket frames.
 *
 * Why not ws itself: a stream socket reads in 64 KiB pieces, each a fresh buffer pushed through
 * the stream machinery, and ws then joins them into the frame. Here the socket reads into buffers
 * this wire chooses (net's `onread`): a frame's header and small frames land in a staging buffer,
 * and once a message's header is known, the rest of its payload is read straight to where it goes,
 * in as large reads as the kernel gives: the place the sink names (e.g. the tensor it would be
 * copied into) or one reused, 4-byte-aligned buffer. On loopback that cuts the CPU time per
 * received byte several times. Sending writes the frame header and the caller's payload as they
 * are: a client masks with an all-zero key, which leaves the payload unchanged.
 */
import { Socket, type SocketConstructorOpts } from 'node:net';

import { HEADER_BYTES } from './frame.js';
import { MessageQueue } from './message_queue.js';
import { BadFrameError, type Message, type Wire, type WireSink } from './wire.js';
import {
  decodeWsHeader,
  encodeWsHeader,
  MAX_WS_HEADER_BYTES,
  Opcode,
  unmask,
  wsHeaderBytes,
  type WsHeader,
} from './ws_frame.js';

/** Reads of frame headers and of small frames land here. */
const STAGING_BYTES = 64 << 10;
/** When at least this much of a payload is still to come, the next read goes straight into it. */
const DIRECT_FROM_BYTES = 4 << 10;
/** Messages with at least this much payload past their header ask the sink where it goes. */
const PLACE_FROM_BYTES = 16 << 10;
/** Payloads up to this size are copied behind their headers and written as one buffer. */
const JOIN_UP_TO_BYTES = 16 << 10;
/** How long a closing wire waits for the remote's close before dropping the socket (as ws). */
const CLOSE_TIMEOUT_MS = 30_000;

const KNOWN_OPCODES = new Set<number>(Object.values(Opcode));

/** What `adopt` needs of net's stream handle. */
interface StreamHandle {
  readStop(): number;
  reading: boolean;
}

export interface SocketWireOptions {
  /** The dialling side masks its frames and expects unmasked ones; the accepting side the reverse. */
  side: 'client' | 'server';
  /** Frames with a longer payload are refused (closed with 1009). */
  maxPayload: number;
}

export class SocketWire implements Wire {
  private readonly socket: Socket;
  private readonly queue = new MessageQueue();
  private readonly staging = Buffer.allocUnsafeSlow(STAGING_BYTES);
  /** Where each frame's payload is assembled: its own ArrayBuffer, so 4-byte aligned. */
  private payload = Buffer.allocUnsafeSlow(STAGING_BYTES);
  /**
   * Where the current frame's payload bytes from HEADER_BYTES on go: the rest of `payload`, or
   * the sink's placement. Set once the first HEADER_BYTES have arrived.
   */
  private body: Buffer | undefined;
  private readonly head = Buffer.alloc(MAX_WS_HEADER_BYTES);
  private headHave = 0;
  private headNeed = 2;
  /** The frame whose payload is being received, once its header is complete. */
  private frame: WsHeader | undefined;
  private filled = 0;
  /** Whether the read in progress goes straight into `payload`. */
  private direct = false;
  private failed = false;
  private sentClose = false;
  private readonly errorFns: ((e: Error) => void)[] = [];
  private readonly pongFns: (() => void)[] = [];

  private constructor(
    handle: StreamHandle,
    private readonly opts: SocketWireOptions,
  ) {
    this.socket = new Socket({
      handle,
      onread: { buffer: () => this.nextTarget(), callback: (n: number) => this.onRead(n) },
    } as SocketConstructorOpts);
    // Like ws: a socket error (e.g. the remote process was killed) is an abnormal close, 1006.
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => this.queue.close(1006, ''));
  }

  /**
   * Takes `socket`'s connection over: stops it reading, moves its handle to a socket of this wire's
   * and destroys the old one (its listeners removed first, so nothing else sees it go). The caller
   * makes sure no bytes of the connection are buffered unread or unwritten in `socket`.
   */
  static adopt(socket: Socket, opts: SocketWireOptions): SocketWire {
    const s = socket as unknown as { _handle?: StreamHandle | null };
    const handle = s._handle;
    if (!handle || typeof handle.readStop !== 'function') {
      throw new Error('cannot take the connection over: its socket has no stream handle');
    }
    if (socket.readableLength > 0 || socket.writableLength > 0) {
      throw new Error('cannot take the connection over: its socket still buffers data');
    }
    handle.readStop();
    handle.reading = false;
    socket.removeAllListeners();
    s._handle = null;
    socket.destroy();
    return new SocketWire(handle, opts);
  }

  take(timeoutMs: number, what: string): Promise<Message> {
    return this.queue.take(timeoutMs, what);
  }

  drainTo(sink: WireSink): void {
    this.queue.drainTo(sink);
  }

  send(header: Buffer, payload?: Uint8Array, done?: (err?: Error) => void): void {
    const length = header.length + (payload?.byteLength ?? 0);
    const wsHead = encodeWsHeader(Opcode.binary, length, this.opts.side === 'client');
    const cb = (err?: Error | null): void => done?.(err ?? undefined);
    if (payload === undefined || payload.byteLength <= JOIN_UP_TO_BYTES) {
      this.socket.write(Buffer.concat(payload ? [wsHead, header, payload] : [wsHead, header]), cb);
      return;
    }
    // One writev of both buffers; the payload is written from where it lies.
    this.socket.cork();
    this.socket.write(Buffer.concat([wsHead, header]));
    this.socket.write(payload, cb);
    this.socket.uncork();
  }

  ping(): void {
    this.control(Opcode.ping, Buffer.alloc(0));
  }

  onPong(fn: () => void): void {
    this.pongFns.push(fn);
  }

  onError(fn: (e: Error) => void): void {
    this.errorFns.push(fn);
  }

  close(code: number, reason: string): void {
    if (this.sentClose || this.socket.destroyed) return;
    this.sentClose = true;
    // A control frame carries at most 125 bytes: the code and 123 bytes of reason.
    const text = Buffer.from(reason, 'utf8').subarray(0, 123);
    const body = Buffer.alloc(2 + text.length);
    body.writeUInt16BE(code, 0);
    text.copy(body, 2);
    this.control(Opcode.close, body);
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_TIMEOUT_MS).unref();
  }

  terminate(): void {
    this.socket.destroy();
  }

  private control(opcode: number, body: Buffer): void {
    if (this.socket.writableEnded || this.socket.destroyed) return;
    const wsHead = encodeWsHeader(opcode, body.length, this.opts.side === 'client');
    this.socket.write(Buffer.concat([wsHead, body]));
  }

  /** Called by the socket before each read: where the next bytes should land. */
  private nextTarget(): Buffer {
    const f = this.frame;
    const body = this.body;
    this.direct =
      f !== undefined && body !== undefined && f.length - this.filled >= DIRECT_FROM_BYTES;
    return this.direct ? (body as Buffer).subarray(this.filled - HEADER_BYTES) : this.staging;
  }

  /** `n` bytes arrived in the buffer `nextTarget` returned. */
  private onRead(n: number): void {
    if (!this.direct) return this.parse(n);
    this.filled += n;
    if (this.filled === (this.frame as WsHeader).length) this.deliver();
  }

  /** Walks the first `n` staged bytes: header bytes, payload bytes, possibly several frames. */
  private parse(n: number): void {
    let at = 0;
    while (at < n && !this.failed) {
      const f = this.frame;
      if (f === undefined) {
        const take = Math.min(this.headNeed - this.headHave, n - at);
        this.staging.copy(this.head, this.headHave, at, at + take);
        at += take;
        this.headHave += take;
        if (this.headHave === 2) this.headNeed = wsHeaderBytes(this.head[1] as number);
        if (this.headHave === this.headNeed) this.startFrame();
        continue;
      }
      const body = this.body;
      if (body === undefined) {
        const take = Math.min(HEADER_BYTES - this.filled, f.length - this.filled, n - at);
        this.staging.copy(this.payload, this.filled, at, at + take);
        at += take;
        this.filled += take;
        if (this.filled === HEADER_BYTES) this.body = this.placeBody(f);
      } else {
        const take = Math.min(f.length - this.filled, n - at);
        this.staging.copy(body, this.filled - HEADER_BYTES, at, at + take);
        at += take;
        this.filled += take;
      }
      if (this.filled === f.length) this.deliver();
    }
  }

  /**
   * The first HEADER_BYTES of a frame's payload have arrived: the rest goes where the sink places
   * it, or to the reused buffer. Only unmasked binary messages (or masked with a zero key, as
   * peers do) are placed, so the bytes written there are the message's own.
   */
  private placeBody(f: WsHeader): Buffer {
    const bytes = f.length - HEADER_BYTES;
    const own = this.payload.subarray(HEADER_BYTES, f.length);
    const plain = f.mask === undefined || f.mask.readUInt32LE(0) === 0;
    if (f.opcode !== Opcode.binary || !plain || bytes < PLACE_FROM_BYTES) return own;
    const place = this.queue.place(this.payload.subarray(0, HEADER_BYTES), bytes);
    if (place === undefined || place.byteLength !== bytes) return own;
    return Buffer.from(place.buffer, place.byteOffset, place.byteLength);
  }

  /** A frame header is complete: check it before any of its payload is read. */
  private startFrame(): void {
    const bytes = this.headNeed;
    this.headHave = 0;
    this.headNeed = 2;
    let h: WsHeader;
    try {
      h = decodeWsHeader(this.head.subarray(0, bytes));
    } catch (e) {
      return this.protocolError(`malformed frame: ${(e as Error).message}`, 1002);
    }
    const fromClient = this.opts.side === 'server';
    if (!KNOWN_OPCODES.has(h.opcode)) {
      return this.protocolError(`malformed frame: unknown opcode ${h.opcode}`, 1002);
    }
    if ((h.mask !== undefined) !== fromClient) {
      const want = fromClient ? 'masked frames from a client' : 'unmasked frames from a server';
      return this.protocolError(`malformed frame: expected ${want}`, 1002);
    }
    if (!h.fin || h.opcode === Opcode.continuation) {
      return this.protocolError('malformed frame: expected whole messages, got a fragment', 1002);
    }
    if (h.length > this.opts.maxPayload) {
      return this.protocolError(
        `a frame of ${h.length} bytes is over the size limit of ${this.opts.maxPayload}`,
        1009,
      );
    }
    if (this.payload.length < h.length) this.payload = Buffer.allocUnsafeSlow(h.length);
    // The masking key is a view of `head`, which the next frame's header overwrites: keep a copy.
    this.frame = { ...h, mask: h.mask && Buffer.from(h.mask) };
    this.filled = 0;
    this.body = undefined;
    if (h.length === 0) this.deliver();
  }

  /** A frame's payload is complete in `payload`. */
  private deliver(): void {
    const f = this.frame as WsHeader;
    const head = this.payload.subarray(0, Math.min(f.length, HEADER_BYTES));
    const body = this.body ?? this.payload.subarray(HEADER_BYTES, Math.max(f.length, HEADER_BYTES));
    this.frame = undefined;
    this.body = undefined;
    if (f.mask) {
      // The body starts at a multiple of 4 into the payload, where the key starts over.
      unmask(head, f.mask);
      unmask(body, f.mask);
    }
    // Control frames (≤ 125 bytes) are never placed: their payload is contiguous in `payload`.
    const data = this.payload.subarray(0, f.length);
    switch (f.opcode) {
      case Opcode.binary:
      case Opcode.text:
        this.queue.push({ head, payload: body, isBinary: f.opcode === Opcode.binary });
        return;
      case Opcode.ping:
        return this.control(Opcode.pong, Buffer.from(data));
      case Opcode.pong:
        for (const fn of this.pongFns) fn();
        return;
      default: {
        // Close: answer it (RFC 6455 5.5.1) and report the remote's code and reason.
        const code = data.length >= 2 ? data.readUInt16BE(0) : 1005;
        const reason = data.subarray(2).toString('utf8');
        this.close(code === 1005 ? 1000 : code, '');
        this.queue.close(code, reason);
      }
    }
  }

  /** The remote broke the protocol: report it, close with `code` and read nothing more. */
  private protocolError(message: string, code: number): void {
    if (this.failed) return;
    this.failed = true;
    const e = new BadFrameError(message);
    for (const fn of this.errorFns) fn(e);
    this.close(code, message.slice(0, 120));
    this.socket.destroySoon();
    this.queue.close(code, message);
  }
}
