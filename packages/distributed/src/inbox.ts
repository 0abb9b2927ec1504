/**
 * A ws WebSocket as a {@link Wire}: every connection starts as one (ws does the HTTP upgrade and
 * carries the job-token handshake), and links to the coordinator stay one. Messages are held from
 * the moment it opens, so none is lost between the handshake and the link.
 */
import type { Socket } from 'node:net';

import type { WebSocket } from 'ws';

import { HEADER_BYTES } from './frame.js';
import { MessageQueue } from './message_queue.js';
import { SocketWire, type SocketWireOptions } from './socket_wire.js';
import type { Message, Wire, WireSink } from './wire.js';

/** Payloads up to this size are joined to their header and sent as one frame. */
const JOIN_UP_TO_BYTES = 16 << 10;

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

export class Inbox implements Wire {
  private readonly queue = new MessageQueue();

  constructor(readonly ws: WebSocket) {
    ws.binaryType = 'fragments';
    reuseReceiveBuffer(ws);
    ws.on('message', (data: Buffer | Buffer[], isBinary: boolean) =>
      this.queue.push(split(data, isBinary)),
    );
    ws.on('close', (code: number, reason: Buffer) => this.queue.close(code, reason.toString()));
  }

  take(timeoutMs: number, what: string): Promise<Message> {
    return this.queue.take(timeoutMs, what);
  }

  drainTo(sink: WireSink): void {
    this.queue.drainTo(sink);
  }

  /**
   * A small payload goes joined to the header in one frame (one write, one read on the other
   * side), a large one as a second fragment without copying it.
   */
  send(header: Buffer, payload?: Uint8Array, done?: (err?: Error) => void): void {
    if (payload === undefined || payload.byteLength === 0) {
      this.ws.send(header, { binary: true }, done);
    } else if (payload.byteLength <= JOIN_UP_TO_BYTES) {
      this.ws.send(Buffer.concat([header, payload]), { binary: true }, done);
    } else {
      this.ws.send(header, { binary: true, fin: false });
      this.ws.send(payload, { binary: true, fin: true }, done);
    }
  }

  ping(): void {
    this.ws.ping();
  }

  onPong(fn: () => void): void {
    this.ws.on('pong', fn);
  }

  onError(fn: (e: Error) => void): void {
    this.ws.on('error', fn);
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }

  terminate(): void {
    this.ws.terminate();
  }

  /**
   * Moves the connection to a {@link SocketWire} once the handshake is done, and stops reading at
   * once (call it in the same turn as the handshake's last message): whatever the remote sends
   * next is for the new wire. Resolves once everything this side wrote through ws is out.
   */
  async takeOver(opts: SocketWireOptions): Promise<SocketWire> {
    const socket = (this.ws as unknown as { _socket?: Socket })._socket;
    if (!socket) throw new Error('cannot take the connection over: ws has no socket');
    socket.pause();
    (socket as unknown as { _handle?: { readStop(): number } })._handle?.readStop();
    if (this.queue.pending > 0) {
      throw new Error('unexpected message right after the handshake');
    }
    if (socket.writableLength > 0) await new Promise((resolve) => socket.write('', resolve));
    this.ws.removeAllListeners();
    return SocketWire.adopt(socket, opts);
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
 * the parser copy the final frame of a message into one buffer it reuses instead: messages are
 * delivered synchronously, so a frame's payload is handled before the next one arrives (the
 * queue copies what it holds). Leaves ws as it is when its parser does not look as expected.
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
