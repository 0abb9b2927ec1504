/**
 * The data plane between two peers: RFC 6455 binary frames written and parsed straight on the TCP
 * socket that ws opened and authenticated, so the bytes on the wire stay WebSocket frames.
 *
 * Why not ws itself: a stream socket reads in 64 KiB pieces, each a fresh buffer pushed through
 * the stream machinery, and ws then joins them into the frame. Here the socket reads into buffers
 * a {@link FrameReader} chooses, straight to where the payload goes. Sending writes the frame
 * header and the caller's payload as they are: a client masks with an all-zero key, which leaves
 * the payload unchanged.
 */
import { Socket, type SocketConstructorOpts } from 'node:net';

import { FrameReader } from './frame_reader.js';
import { MessageQueue } from './message_queue.js';
import { BadFrameError, type Message, type Wire, type WireSink } from './wire.js';
import { encodeWsHeader, Opcode } from './ws_frame.js';

/** Payloads up to this size are copied behind their headers and written as one buffer. */
const JOIN_UP_TO_BYTES = 16 << 10;
/** How long a closing wire waits for the remote's close before dropping the socket (as ws). */
const CLOSE_TIMEOUT_MS = 30_000;

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
  private sentClose = false;
  private readonly errorFns: ((e: Error) => void)[] = [];
  private readonly pongFns: (() => void)[] = [];

  private constructor(
    handle: StreamHandle,
    private readonly opts: SocketWireOptions,
  ) {
    const reader = new FrameReader(
      { fromClient: opts.side === 'server', maxPayload: opts.maxPayload },
      {
        message: (m: Message) => this.queue.push(m),
        place: (head, bytes) => this.queue.place(head, bytes),
        control: (opcode, data) => this.onControl(opcode, data),
        protocolError: (message, code) => this.protocolError(message, code),
      },
    );
    this.socket = new Socket({
      handle,
      onread: { buffer: () => reader.nextTarget(), callback: (n: number) => reader.onRead(n) },
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

  /** A ping, pong or close frame from the remote. */
  private onControl(opcode: number, data: Buffer): void {
    if (opcode === Opcode.ping) return this.control(Opcode.pong, Buffer.from(data));
    if (opcode === Opcode.pong) {
      for (const fn of this.pongFns) fn();
      return;
    }
    // Close: answer it (RFC 6455 5.5.1) and report the remote's code and reason.
    const code = data.length >= 2 ? data.readUInt16BE(0) : 1005;
    const reason = data.subarray(2).toString('utf8');
    this.close(code === 1005 ? 1000 : code, '');
    this.queue.close(code, reason);
  }

  /** The remote broke the protocol: report it, close with `code` and read nothing more. */
  private protocolError(message: string, code: number): void {
    const e = new BadFrameError(message);
    for (const fn of this.errorFns) fn(e);
    this.close(code, message.slice(0, 120));
    this.socket.destroySoon();
    this.queue.close(code, message);
  }
}
