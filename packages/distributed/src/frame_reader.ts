/**
 * The receiving half of {@link SocketWire}: parses RFC 6455 frames out of the bytes a socket reads
 * into buffers this reader chooses (net's `onread`). A frame's header and small frames land in a
 * staging buffer; once a message's header is known, the rest of its payload is read straight to
 * where it goes, in as large reads as the kernel gives: the place the sink names (e.g. the tensor
 * it would be copied into) or one reused, 4-byte-aligned buffer. On loopback that cuts the CPU time
 * per received byte several times.
 */
import { HEADER_BYTES } from './frame.js';
import type { Message } from './wire.js';
import {
  decodeWsHeader,
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

const KNOWN_OPCODES = new Set<number>(Object.values(Opcode));

export interface FrameReaderOptions {
  /** Whether the remote is the dialling side (its frames are masked) or the accepting one. */
  fromClient: boolean;
  /** Frames with a longer payload are refused (1009). */
  maxPayload: number;
}

/** Where a reader's frames go. */
export interface FrameEvents {
  message(m: Message): void;
  /** The sink's place for a binary message's payload past its header, if it has one. */
  place(head: Buffer, bytes: number): Uint8Array | undefined;
  /** A ping, pong or close frame and its payload (valid during the call). */
  control(opcode: number, data: Buffer): void;
  /** The remote broke the protocol; the reader reads nothing more. */
  protocolError(message: string, code: number): void;
}

export class FrameReader {
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

  constructor(
    private readonly opts: FrameReaderOptions,
    private readonly events: FrameEvents,
  ) {}

  /** Called by the socket before each read: where the next bytes should land. */
  nextTarget(): Buffer {
    const f = this.frame;
    const body = this.body;
    this.direct =
      f !== undefined && body !== undefined && f.length - this.filled >= DIRECT_FROM_BYTES;
    return this.direct ? (body as Buffer).subarray(this.filled - HEADER_BYTES) : this.staging;
  }

  /** `n` bytes arrived in the buffer `nextTarget` returned. */
  onRead(n: number): void {
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
    const place = this.events.place(this.payload.subarray(0, HEADER_BYTES), bytes);
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
    const { fromClient } = this.opts;
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
    if (f.opcode === Opcode.binary || f.opcode === Opcode.text) {
      this.events.message({ head, payload: body, isBinary: f.opcode === Opcode.binary });
    } else {
      this.events.control(f.opcode, this.payload.subarray(0, f.length));
    }
  }

  private protocolError(message: string, code: number): void {
    if (this.failed) return;
    this.failed = true;
    this.events.protocolError(message, code);
  }
}
